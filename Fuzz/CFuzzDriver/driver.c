#include "CFuzzDriver.h"

#ifdef OPENCLAW_FUZZING
// libFuzzer's entry for programs with their own main (LLVM >= 11): the Swift executable keeps
// its main (SwiftPM aliases it), so libFuzzer's main is never linked.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif

int openclaw_fuzz_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
#ifdef OPENCLAW_FUZZING
    return LLVMFuzzerRunDriver(argc, argv, callback);
#else
    (void)argc; (void)argv; (void)callback;
    return -1;
#endif
}
