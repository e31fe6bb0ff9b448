//! `cargo xtask <task>`: the project's automation, in Rust so it runs
//! anywhere the toolchain does.

fn main() -> anyhow::Result<()> {
    eprintln!("usage: cargo xtask <task>\n\ntasks:\n  drill   build cairn and run the canonical restore drill end to end");
    Ok(())
}
