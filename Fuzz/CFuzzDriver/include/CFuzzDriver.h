#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (LLVMFuzzerRunDriver) with `callback` as the target. Built with
/// -DOPENCLAW_FUZZING (scripts/fuzz) it links libFuzzer's driver; otherwise it returns -1 and
/// the program replays files instead.
int openclaw_fuzz_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
