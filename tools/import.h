/* import: converters from public benchmark splits to a DESIGN §3 input
 * directory (DESIGN §5 `sagepipe import`). Ids are kept as in the files:
 * user k -> user_id k and board_id k, item j -> pin_id j. */
#ifndef SP_IMPORT_H
#define SP_IMPORT_H

#include <stdint.h>

typedef struct {
    uint64_t users;       /* users written (with at least one kept item) */
    uint64_t items;       /* distinct items in the kept data */
    uint64_t edges;       /* pin_board.tsv rows (distinct (item, user)) */
    uint64_t events;      /* events.tsv rows */
    uint64_t dup_edges;   /* repeated (item, user) pairs folded into one edge */
    uint64_t tokens_rows; /* pin_tokens.tsv rows */
    uint64_t users_held_out; /* users whose items were all held out (s3rec --holdout): in no file */
} sp_import_stats;

/* LightGCN split: reads data_dir/train.txt only (lines "user item item ..."),
 * writes out_dir/pin_board.tsv ("item\tuser", first occurrence order, a
 * repeated item of a line folded and counted in dup_edges) and
 * out_dir/events.tsv ("user\titem\tengage\tts", every item in file order,
 * ts = 1700000000000 + 1000 * global event index). Creates out_dir; files
 * are written as NAME.tmp and renamed. Bad input (non-numeric token, empty
 * line, user without items, a user on two lines) -> SP_EINPUT naming file,
 * line and what is wrong; SP_EIO on I/O errors. stats may be NULL.
 * validation > 0 (< 1): a validation split of the train items: of each user's
 * n >= 2 items, round(validation * n) (at least 1, at most n - 1), a uniform
 * random subset fixed by the user id (validation_last = 0) or the line's last
 * ones in file order (validation_last = 1), are left out and written to
 * out_dir/heldout.txt (LightGCN format, for eval.test); the rest keep their
 * order. SP_EUSAGE when validation is outside [0, 1), and (both importers)
 * when out_dir already holds an input of DESIGN §3 that this import would
 * not replace (pin_pin.tsv, pin_dense.sfv, pin_tokens.tsv, heldout.txt,
 * .zst variants): it would be read beside the new files; nothing is written. */
int sp_import_lightgcn(const char *data_dir, const char *out_dir, double validation, int validation_last,
                       sp_import_stats *stats);

/* S3Rec sequences: lines "user item item ..." in time order. Each user's
 * kept items (all but the last `holdout`) become events ("user\titem\tengage\tts",
 * ts = 1700000000000 + 60000 * position in that user's sequence) and deduped
 * pin_board edges ("item\tuser"). With attributes_json (item2attributes.json:
 * {"item": [attr, ...]}) writes pin_tokens.tsv rows "item\tattr<a1> attr<a2> ..."
 * in ascending item order, for kept items with at least one attribute.
 * Errors as for sp_import_lightgcn; bad JSON or a non-integer item/attribute
 * is SP_EINPUT naming the JSON file; so is a file whose users all have at
 * most `holdout` items (nothing kept: users_held_out counts such users).
 * stats may be NULL. */
int sp_import_s3rec(const char *seq_file, const char *out_dir, const char *attributes_json, int holdout,
                    sp_import_stats *stats);

#endif
