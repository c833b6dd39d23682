//! Lease owners are `pid@host`; a lease whose process is gone on this machine can be taken over.

use orchestra_runtime::owner_is_dead;

#[test]
fn a_live_process_holds_and_a_finished_one_does_not() {
    let me = std::process::id();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert!(
        !owner_is_dead(&format!("{me}@{host}")),
        "this process is alive"
    );
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(
        owner_is_dead(&format!("{pid}@{host}")),
        "a reaped child is gone"
    );
    assert!(
        !owner_is_dead(&format!("{pid}@some-other-host")),
        "another machine's process is not ours to judge"
    );
    assert!(!owner_is_dead("garbage"));
}
