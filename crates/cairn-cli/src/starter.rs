//! The starter `cairn.toml` written by `cairn init`: every registered kind
//! with its options, generated from the plug-ins' own docs, so a new
//! plug-in documents itself here without touching the CLI.

use std::fmt::Write;

use cairn_engine::Registry;

pub fn config_text(registry: &Registry) -> String {
    let mut s = String::from(
        r#"# cairn.toml — what Cairn backs up and where the snapshots go.
# Relative paths resolve against this file's directory.
# Unknown keys are errors, so a typo never silently does nothing.

# Snapshots live in <repository>/snapshots/<ID>/.
repository = "backups"

# How long a run waits for another run's repository lock (default 10).
# lock_wait_seconds = 10

[retention]           # UTC days; `cairn prune` is a dry run unless --confirm
keep_daily = 7        # newest snapshot of each of the 7 newest days that have one
keep_weekly = 4       # plus Sunday snapshots of the 4 newest such Sundays (a missed Sunday: that week's newest)
keep_monthly = 6      # plus 1st-of-month snapshots of the 6 newest such days (a missed 1st: that month's oldest)
keep_pre_restore_days = 7   # a restore's pre-restore snapshot, and what it restored
# keep_last = 3       # the 3 newest snapshots, whatever their days
# keep_within = "14d" # every snapshot within 14 days of the newest (units h, d, w, m, y)
# keep_tag = ["release"]    # every snapshot with one of these tags

# [hooks]             # argv arrays, run without a shell
# before_snapshot = ["systemctl", "stop", "my-service"]
# after_snapshot  = ["systemctl", "start", "my-service"]   # runs even when the snapshot failed

# One [[store]] table per store. Common keys: name ([a-z0-9_-]{1,64}, unique),
# kind (see `cairn stores`), path, optional (absent source recorded, not an error).
"#,
    );
    for d in registry.descriptors() {
        let name = d.kind.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let _ = write!(
            s,
            "\n# kind {:?}: {}\n[[store]]\nname = {:?}\nkind = {:?}\npath = {}\n# optional = false\n",
            d.kind, d.summary, name, d.kind, d.example_path
        );
        for o in d.options {
            let _ = writeln!(s, "# {} = {}    # {}", o.name, o.example, o.doc);
        }
    }
    s
}
