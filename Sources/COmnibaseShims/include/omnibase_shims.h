#ifndef OMNIBASE_SHIMS_H
#define OMNIBASE_SHIMS_H

/* Wait-status decoding: the function-like macros of <sys/wait.h> are not imported into Swift. */
int omni_wifexited(int status);
int omni_wexitstatus(int status);
int omni_wifsignaled(int status);
int omni_wtermsig(int status);

#endif
