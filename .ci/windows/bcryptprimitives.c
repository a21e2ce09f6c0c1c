/* A stand-in for Windows' bcryptprimitives.dll, which Debian's wine 8 lacks
 * and Rust's std imports (ProcessPrng, its random source since Rust 1.78).
 * It answers ProcessPrng from advapi32's RtlGenRandom (SystemFunction036),
 * which wine has. Built with mingw and placed beside bbinject.exe for the
 * tests under wine only; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
