//! One change to SQLite's unix VFS, made once per process before any
//! connection opens: its `fchown` becomes "chown only when the owner is
//! not already the one asked for".
//!
//! Why: SQLite, running as root, `fchown`s every `-wal` and `-journal` it
//! opens to the database file's owner (so a root process never leaves
//! the service a sidecar it cannot open). Linux moves a file's ctime on
//! every successful `chown`, even one that changes nothing. So each online
//! copy Cairn made as root moved the live `-wal`'s ctime, and the next
//! snapshot could never find the database's files as the last one
//! recorded them (`LiveState`): every unchanged database was copied again.
//! Skipping the call when the owner and group are already right keeps
//! SQLite's guarantee (the sidecar ends up the database owner's) and
//! leaves an untouched file untouched.

use std::sync::Once;

use rusqlite::ffi;

static INSTALL: Once = Once::new();

/// Installs the `fchown` replacement into the default VFS; later calls do
/// nothing. Every helper of this crate that opens a connection calls it
/// first. Best effort: if SQLite refuses, its own `fchown` stays (copies
/// are then only reused less often, never wrongly).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS (the
        // unix one) or NULL, checked; SQLite's VFS objects live for the
        // process. `xSetSystemCall` is the VFS's documented override
        // hook; it runs inside `call_once`, before this crate opens any
        // connection. SQLite stores the pointer as a generic
        // `sqlite3_syscall_ptr` and calls it back with the signature of
        // the call it replaces, `int fchown(int, uid_t, gid_t)`, which is
        // `fchown_if_needed`'s; the transmute only erases that type, as
        // SQLite's own table does for libc's `fchown`.
        unsafe {
            let vfs = ffi::sqlite3_vfs_find(std::ptr::null());
            if vfs.is_null() {
                return;
            }
            let Some(set) = (*vfs).xSetSystemCall else {
                return;
            };
            let replacement: unsafe extern "C" fn(
                libc::c_int,
                libc::uid_t,
                libc::gid_t,
            ) -> libc::c_int = fchown_if_needed;
            let erased: unsafe extern "C" fn() = std::mem::transmute::<
                unsafe extern "C" fn(libc::c_int, libc::uid_t, libc::gid_t) -> libc::c_int,
                unsafe extern "C" fn(),
            >(replacement);
            // Not SQLITE_OK only for a VFS without that call: nothing to do.
            let _ = set(vfs, c"fchown".as_ptr(), Some(erased));
        }
    });
}

/// `fchown(fd, uid, gid)` unless `fd`'s owner and group already are those
/// (`-1`, "leave as is", counts as already right).
#[allow(unsafe_code)]
unsafe extern "C" fn fchown_if_needed(
    fd: libc::c_int,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> libc::c_int {
    // SAFETY: `st` is a plain C struct that `fstat` fills in, valid when it
    // returns 0 (checked); `fd` is the descriptor SQLite passed, open for
    // the duration of the call; `fchown` takes plain integers.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0
            && (uid == libc::uid_t::MAX || st.st_uid == uid)
            && (gid == libc::gid_t::MAX || st.st_gid == gid)
        {
            return 0;
        }
        libc::fchown(fd, uid, gid)
    }
}
