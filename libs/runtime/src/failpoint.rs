//! Crash points for fault-injection tests. `failpoint("allocation.after_reserve").await`
//! does nothing unless the process was started with `FAILPOINTS` naming that point (several
//! are separated by commas); then it writes `failpoint <name> reached` to stderr and holds
//! that request there for good, its transaction open, so a test can `kill -9` the process at
//! exactly that step instead of hoping a sleep lands there.
//!
//! Built only with the `failpoints` feature, which only the test kit turns on: a release
//! build carries none of it, and `FAILPOINTS` means nothing to it.

#[cfg(feature = "failpoints")]
pub async fn failpoint(name: &'static str) {
    use std::collections::HashSet;
    use std::io::Write;
    use std::sync::OnceLock;

    static ARMED: OnceLock<HashSet<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var("FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(|point| point.trim().to_owned())
            .filter(|point| !point.is_empty())
            .collect()
    });
    if armed.contains(name) {
        {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "failpoint {name} reached");
            let _ = stderr.flush();
        }
        std::future::pending::<()>().await;
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub async fn failpoint(_name: &'static str) {}
