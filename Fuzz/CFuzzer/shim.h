// libFuzzer's entry for a program that has its own main (llvm.org/docs/LibFuzzer.html).
// SwiftPM links an executable's main to `<module>_main`, so the driver's main calls this.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
