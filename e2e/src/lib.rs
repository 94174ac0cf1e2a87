//! End-to-end tests of tsuitate (`tests/`): the real `tsuitate-gateway`, `tsuitate-agent` and
//! `tsuitate-viewer` binaries on loopback, started by the test kit's `Stack`
//! (`tsuitate-testkit`), against a local test page. This library holds nothing itself.
#![forbid(unsafe_code)]
