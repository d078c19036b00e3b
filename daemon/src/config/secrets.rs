//! Secrets out of the config file: every secret key takes a string, `{ env = "NAME" }` (an
//! environment variable) or `{ file = "PATH" }` (a file's contents, relative to the config
//! file's directory, one trailing newline dropped), so a config can be committed and shared.
//! They are resolved on the parsed TOML, before the typed structs see them, so every consumer
//! (including plugin settings and other crates' tables) gets a plain string, and a reload
//! (SIGHUP), which parses the file again, reads them again.

use std::borrow::Cow;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigError, LoadConfigError};

/// Top-level tables and their secret keys.
const TABLE_SECRETS: [(&str, &[&str]); 3] = [
    ("admin", &["token"]),
    ("turn", &["secret"]),
    ("ice", &["credential"]),
];

/// Keys of `[cluster]`: the Redis URL may carry a password.
const CLUSTER_SECRETS: [&str; 2] = ["redis_url", "redis_password"];

/// Keys of each `[[antmedia_app]]`.
const APP_SECRETS: [&str; 2] = ["jwt_secret", "hash_secret"];

/// What the sources look like, for error messages.
const SHAPES: &str = "must be a string, { env = \"NAME\" } or { file = \"PATH\" }";

/// Parses TOML text into `T` with every secret resolved (`{ file = .. }` relative to `dir`).
/// Syntax and type errors keep their line and column; secret problems are reported together,
/// each at its key.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    dir: &Path,
) -> Result<T, LoadConfigError> {
    let located = |mut e: toml::de::Error| {
        e.set_input(Some(text));
        LoadConfigError::Parse(e.to_string())
    };
    let mut root = DeTable::parse(text).map_err(located)?;
    let errors = resolve(root.get_mut(), dir);
    if !errors.is_empty() {
        return Err(LoadConfigError::Invalid(errors));
    }
    T::deserialize(toml::de::Deserializer::from(root)).map_err(located)
}

/// Replaces every secret given as `{ env = .. }` or `{ file = .. }` in `root` by its value
/// (keeping its span, so later errors still point at the line). Returns every problem, each
/// at the key's location (`admin.token`, `plugin[1].settings.token.secret`).
pub(super) fn resolve(root: &mut DeTable<'_>, dir: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (table, keys) in TABLE_SECRETS {
        if let Some(DeValue::Table(t)) = entry(root, table) {
            resolve_keys(t, keys, table, dir, &mut errors);
        }
    }
    if let Some(DeValue::Table(t)) = entry(root, "cluster") {
        resolve_keys(t, &CLUSTER_SECRETS, "cluster", dir, &mut errors);
    }
    for (array, settings) in [("antmedia_app", false), ("plugin", true)] {
        let Some(DeValue::Array(items)) = entry(root, array) else {
            continue;
        };
        for (i, item) in items.iter_mut().enumerate() {
            let DeValue::Table(t) = item.get_mut() else {
                continue;
            };
            let at = format!("{array}[{i}]");
            if !settings {
                resolve_keys(t, &APP_SECRETS, &at, dir, &mut errors);
            } else if let Some(DeValue::Table(s)) = entry(t, "settings") {
                resolve_plugin_settings(s, &format!("{at}.settings"), dir, &mut errors);
            }
        }
    }
    errors
}

/// The value at `key` of `table`, if any.
fn entry<'a, 'i>(table: &'a mut DeTable<'i>, key: &str) -> Option<&'a mut DeValue<'i>> {
    table.get_mut(key).map(Spanned::get_mut)
}

fn resolve_keys(
    table: &mut DeTable<'_>,
    keys: &[&str],
    at: &str,
    dir: &Path,
    errors: &mut Vec<ConfigError>,
) {
    for key in keys {
        if let Some(value) = table.get_mut(*key) {
            resolve_one(value, &format!("{at}.{key}"), dir, errors);
        }
    }
}

/// Plugin settings belong to the plugin, so the gateway cannot know their secret keys: a key
/// whose name ends in `secret` (room-policy's `token.secret`, `token.jwt_hs256_secret`), at
/// any depth, takes the secret forms.
fn resolve_plugin_settings(
    table: &mut DeTable<'_>,
    at: &str,
    dir: &Path,
    errors: &mut Vec<ConfigError>,
) {
    for (key, value) in table.iter_mut() {
        let location = format!("{at}.{}", key.get_ref());
        if key.get_ref().ends_with("secret") {
            resolve_one(value, &location, dir, errors);
        } else if let DeValue::Table(inner) = value.get_mut() {
            resolve_plugin_settings(inner, &location, dir, errors);
        }
    }
}

/// Resolves one secret in place; a plain string stays as it is.
fn resolve_one(
    value: &mut Spanned<DeValue<'_>>,
    at: &str,
    dir: &Path,
    errors: &mut Vec<ConfigError>,
) {
    let DeValue::Table(source) = value.get_ref() else {
        return;
    };
    match read(source, dir) {
        Ok(secret) => *value.get_mut() = DeValue::String(Cow::Owned(secret)),
        Err(message) => errors.push(ConfigError::at(at, message)),
    }
}

/// The secret a `{ env = .. }` or `{ file = .. }` table names.
fn read(source: &DeTable<'_>, dir: &Path) -> Result<String, String> {
    let mut entries = source.iter();
    let (Some((kind, name)), None) = (entries.next(), entries.next()) else {
        return Err(SHAPES.to_owned());
    };
    let Some(name) = name.get_ref().as_str() else {
        return Err(SHAPES.to_owned());
    };
    match kind.get_ref().as_ref() {
        "env" => match std::env::var(name) {
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("environment variable `{name}` is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable `{name}` is not valid UTF-8"))
            }
        },
        "file" => {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
            // `echo secret > file` and editors add one newline; it is never part of a secret.
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
        }
        _ => Err(SHAPES.to_owned()),
    }
}

#[cfg(test)]
mod tests;
