/* Test-only stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks (Windows 10 and later
 * ship it; Rust's standard library imports ProcessPrng from it). Built with mingw-w64 by
 * e2e/tests/windows_viewer.rs and placed beside the .exe under test; never shipped.
 * Wine 8 にない bcryptprimitives.dll のテスト専用の代用品です（配布しません）。 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
