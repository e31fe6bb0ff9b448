//! The `cairn` binary: links the standard store plug-ins and hands over to
//! the library. A deployment with its own plug-in writes the same three
//! lines plus one `use` for it.

use cairn_chroma_dir as _;
use cairn_registry_json as _;
use cairn_sqlite as _;

fn main() -> std::process::ExitCode {
    cairn_cli::main()
}
