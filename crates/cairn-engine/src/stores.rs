//! The stores of one command, each with its plug-in built once.
//!
//! A command builds [`Stores`] from the config before any hook runs or file
//! is touched (so a bad option fails with nothing done), and every stage of
//! that command — snapshot, validate, restore, drill, the pre-restore
//! snapshot — uses the handlers built here. Nothing downstream rebuilds a
//! handler from a description with defaults: one store, one configuration,
//! one handler per command.
//!
//! The one exception is a store that a snapshot holds but the config no
//! longer has (or has under another kind). Its handler is built from the
//! manifest's record of the store — kind, source and the options it was
//! captured with — in exactly one place, [`Stores::for_record`].

use std::ops::Deref;
use std::path::PathBuf;

use crate::config::{Config, StoreConfig};
use crate::error::{Error, Result};
use crate::manifest::StoreRecord;
use crate::plugin::{PluginDescriptor, Registry, StoreHandler};

/// One configured store and its handler.
pub struct Store {
    pub config: StoreConfig,
    pub descriptor: &'static PluginDescriptor,
    handler: Box<dyn StoreHandler>,
}

impl Store {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn handler(&self) -> &dyn StoreHandler {
        self.handler.as_ref()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind)
            .finish_non_exhaustive()
    }
}

/// Every configured store of one command, in config order.
#[derive(Debug)]
pub struct Stores {
    registry: Registry,
    stores: Vec<Store>,
    config_file: PathBuf,
}

impl Stores {
    /// Builds every configured store's handler: an unknown kind or a bad
    /// option is a config error, before anything else happens.
    pub fn build(cfg: &Config, registry: Registry) -> Result<Stores> {
        let mut stores = Vec::with_capacity(cfg.stores.len());
        for config in &cfg.stores {
            let (descriptor, handler) = registry.build(config)?;
            stores.push(Store {
                config: config.clone(),
                descriptor,
                handler,
            });
        }
        Ok(Stores {
            registry,
            stores,
            config_file: cfg.file.clone(),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn get(&self, name: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.name() == name)
    }

    /// The stores picked by `only`/`skip`, in config order.
    pub fn select(&self, only: &[String], skip: &[String]) -> Result<Vec<&Store>> {
        select(
            &self.stores,
            Store::name,
            only,
            skip,
            &format!("config {}", self.config_file.display()),
        )
    }

    /// The handler for a store as a snapshot recorded it: the configured
    /// one when the config has the store under the same kind, otherwise
    /// built from the record (its kind, source and recorded options).
    pub fn for_record(&self, record: &StoreRecord) -> Result<RecordHandler<'_>> {
        if let Some(store) = self.get(&record.name) {
            if store.config.kind == record.kind {
                return Ok(RecordHandler::Configured(store));
            }
        }
        let config = StoreConfig::from_record(record);
        let (_, handler) = self.registry.build(&config)?;
        Ok(RecordHandler::Recorded(handler))
    }

    pub(crate) fn config_file(&self) -> &std::path::Path {
        &self.config_file
    }
}

/// A handler for a recorded store (see [`Stores::for_record`]).
pub enum RecordHandler<'a> {
    Configured(&'a Store),
    Recorded(Box<dyn StoreHandler>),
}

impl<'a> Deref for RecordHandler<'a> {
    type Target = dyn StoreHandler + 'a;

    fn deref(&self) -> &Self::Target {
        match self {
            RecordHandler::Configured(store) => store.handler(),
            RecordHandler::Recorded(handler) => handler.as_ref(),
        }
    }
}

/// The operator's only/skip selection over any list of named things (configured stores, a
/// snapshot's stores): unknown names are errors, so a typo never silently
/// selects nothing, and an empty selection is an error too.
pub(crate) fn select<'a, T>(
    items: &'a [T],
    name: impl Fn(&T) -> &str,
    only: &[String],
    skip: &[String],
    place: &str,
) -> Result<Vec<&'a T>> {
    for wanted in only.iter().chain(skip) {
        if !items.iter().any(|item| name(item) == wanted) {
            return Err(Error::UnknownStore {
                name: wanted.clone(),
                place: place.to_owned(),
                available: items.iter().map(|i| name(i).to_owned()).collect(),
            });
        }
    }
    let selected: Vec<&T> = items
        .iter()
        .filter(|item| only.is_empty() || only.iter().any(|o| o == name(item)))
        .filter(|item| !skip.iter().any(|s| s == name(item)))
        .collect();
    if selected.is_empty() {
        return Err(Error::NothingSelected);
    }
    Ok(selected)
}
