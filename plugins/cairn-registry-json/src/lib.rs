//! Store kind `registry-json`: one JSON file (a project registry).
//!
//! The bytes are copied exactly (the copy's SHA-256 is the source's). A
//! source that is not valid JSON is still captured, because an operator
//! may need exactly those bytes back, but fails validation as `json_invalid`.
//! Restore is the engine's atomic file replace.

use std::io::BufReader;
use std::path::Path;

use cairn_engine::{
    CaptureCtx, Depth, Error, PluginDescriptor, Problem, Result, Shape, StoreConfig, StoreHandler,
    StoreRecord,
};

pub const KIND: &str = "registry-json";
pub const JSON_INVALID: &str = "json_invalid";

inventory::submit! {
    PluginDescriptor {
        kind: KIND,
        summary: "one JSON file (e.g. a project registry), copied byte for byte; validated by parsing",
        shape: Shape::File,
        example_path: "\"config/project-registry.json\"",
        options: &[],
        build,
        origin: module_path!(),
    }
}

fn build(config: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
    config.check_options(&[])?;
    Ok(Box::new(RegistryJson))
}

struct RegistryJson;

impl StoreHandler for RegistryJson {
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
        let source = ctx.source().to_owned();
        let meta = cairn_engine::plugin::lstat(&source)?;
        if !meta.is_file() {
            return Err(Error::SourceType {
                path: ctx.source_shown().to_owned(),
                expected: "a regular file (kind registry-json expects a JSON file)",
            });
        }
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "registry.json".into());
        ctx.copy_file(&source, &name, &meta)
    }

    fn check(&self, root: &Path, record: &StoreRecord, _depth: Depth) -> Vec<Problem> {
        record
            .entries
            .iter()
            .filter_map(|entry| {
                let path = root.join(&entry.path);
                let file = match cairn_engine::fsutil::open_nofollow(&path) {
                    Ok(f) => f,
                    Err(e) => {
                        return Some(
                            Problem::new(JSON_INVALID, format!("cannot open: {e}"))
                                .at(entry.path.clone()),
                        )
                    }
                };
                serde_json::from_reader::<_, serde_json::Value>(BufReader::new(file))
                    .err()
                    .map(|e| {
                        Problem::new(JSON_INVALID, format!("does not parse as JSON: {e}"))
                            .at(entry.path.clone())
                    })
            })
            .collect()
    }
}
