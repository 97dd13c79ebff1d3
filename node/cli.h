/*
 * The `spanvm` command line: one function per subcommand, each taking the
 * arguments after the subcommand name (argv[0] is the subcommand).  Each
 * returns the process exit status: 0 success, 1 failure, 2 usage error,
 * or as the subcommand documents (run: the guest's exit code, 124 timeout).
 */
#ifndef SPANVM_NODE_CLI_H
#define SPANVM_NODE_CLI_H

int cmd_launch(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_dtb(int argc, char **argv);

#endif
