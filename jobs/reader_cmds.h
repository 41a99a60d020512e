/* reader_cmds: the commands that read a published shard set (DESIGN §5):
 * `sagepipe verify`, `sagepipe get` and `sagepipe nn`. get and nn go through
 * the public reader library (io/sagepipe_reader.h), as downstream would.
 * Each takes the arguments after the command name and returns the exit code. */
#ifndef SP_READER_CMDS_H
#define SP_READER_CMDS_H

int sp_cmd_verify(int argc, char **argv);
int sp_cmd_get(int argc, char **argv);
int sp_cmd_nn(int argc, char **argv);
/* sagepipe eval: held-out recall/NDCG of a published set (users vs pins, LightGCN protocol). */
int sp_cmd_eval(int argc, char **argv);

#endif
