/* A child for the wine checks of `bbinject exec` on Windows (.ci/windows.sh).
 *   sleeper beat FILE   writes a growing count to FILE every 100 ms, for
 *                       60 s: while the count moves, the process lives.
 *   sleeper ctrlc       sends Ctrl-C to its console's process group (itself
 *                       and the bbinject that started it); its own handler
 *                       exits 130 half a second later, as a build tool that
 *                       cleans up would.
 */
#include <stdio.h>
#include <string.h>
#include <windows.h>

static BOOL WINAPI on_ctrl(DWORD event) {
    (void)event;
    Sleep(500);
    ExitProcess(130);
    return TRUE;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "beat") == 0) {
        for (int i = 0; i < 600; i++) {
            FILE *f = fopen(argv[2], "w");
            if (f) {
                fprintf(f, "%d\n", i);
                fclose(f);
            }
            Sleep(100);
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "ctrlc") == 0) {
        SetConsoleCtrlHandler(on_ctrl, TRUE);
        if (!GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)) {
            fprintf(stderr, "GenerateConsoleCtrlEvent: %lu\n", GetLastError());
            return 3;
        }
        Sleep(5000);
        return 4; /* not reached when the Ctrl-C arrives */
    }
    fprintf(stderr, "usage: sleeper beat FILE | sleeper ctrlc\n");
    return 2;
}
