/* reader_example: look up embeddings in a published sagepipe shard set with
 * the reader library, as a downstream service would (docs/FORMAT.md).
 *
 *   cc reader_example.c $(pkg-config --cflags --libs sagepipe-reader) -o reader_example
 *   ./reader_example out/embeddings/latest/MANIFEST.json p123 b7 u5
 *
 * Prints the set's entities to stderr, then one line per id to stdout:
 * "p123<TAB>v1 v2 ..." or "p123<TAB>NOT_FOUND" (the format of `sagepipe get`).
 * tests/e2e/export.sh builds it against the installed library and compares. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <sagepipe_reader.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MANIFEST.json ID...\n", argv[0]);
        return 2;
    }
    spr_set *set;
    int rc = spr_open(argv[1], 0, &set); /* SPR_VERIFY would check every byte first */
    if (rc) {
        fprintf(stderr, "%s: %s (%s)\n", argv[1], spr_strerror(rc), spr_errmsg());
        return 1;
    }
    unsigned maxdim = 0;
    for (unsigned i = 0; i < spr_entity_count(set); i++) {
        spr_entity e;
        spr_entity_get(set, i, &e);
        fprintf(stderr, "%s: %s, types %s, dim %u, %s, %" PRIu64 " entries in %u shards\n", spr_date(set), e.name,
                e.types, e.dim, e.dtype, e.count, e.nshards);
        if (e.dim > maxdim) maxdim = e.dim;
    }
    float *vec = malloc(sizeof *vec * (maxdim ? maxdim : 1)); /* ours: the library only fills it */
    int status = 0;
    for (int i = 2; i < argc && vec; i++) {
        char type;
        uint64_t id;
        spr_entity e;
        if (spr_parse_id(argv[i], &type, &id) || spr_entity_of(set, type, &e)) {
            printf("%s\tNOT_FOUND\n", argv[i]);
            status = 3;
            continue;
        }
        rc = spr_get(set, type, id, vec, maxdim);
        if (rc == SPR_NOTFOUND) {
            printf("%s\tNOT_FOUND\n", argv[i]);
            status = 3;
            continue;
        }
        if (rc) {
            fprintf(stderr, "%s: %s (%s)\n", argv[i], spr_strerror(rc), spr_errmsg());
            status = 1;
            break;
        }
        printf("%c%" PRIu64 "\t", type, id);
        for (unsigned j = 0; j < e.dim; j++) printf(j ? " %.9g" : "%.9g", (double)vec[j]);
        putchar('\n');
    }
    free(vec);
    spr_close(set); /* every pointer from the set is invalid after this */
    return status;
}
