//! `registry-node kv get|put|delete|export|import`: the key/value store through
//! `/v1/kv`, with Consul's flags and messages.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use registry_api::client::{Client, KvPutOptions};
use registry_api::{KvExportEntry, QueryOptions};

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{fail, fail_client, kv_detailed, print_bytes};
use registry_api::gojson::go_json_indent;

/// Arguments of `kv`.
#[derive(Debug, clap::Args)]
pub struct KvArgs {
    /// The kv subcommand.
    #[command(subcommand)]
    pub command: KvCommand,
}

/// `kv` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KvCommand {
    /// Retrieves or lists data from the KV store.
    Get(KvGetArgs),
    /// Sets or updates data in the KV store.
    Put(KvPutArgs),
    /// Removes data from the KV store.
    Delete(KvDeleteArgs),
    /// Exports a tree from the KV store as JSON.
    Export(KvExportArgs),
    /// Imports a tree stored as JSON to the KV store.
    Import(KvImportArgs),
}

/// Arguments of `kv get`.
#[derive(Debug, clap::Args)]
pub struct KvGetArgs {
    /// Base64 encode the value.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub base64: bool,

    /// Show the key's metadata (ModifyIndex, flags, session...) with the value.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub detailed: bool,

    /// List the keys under the prefix, not their values.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub keys: bool,

    /// Show every key under the prefix with its value.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub recurse: bool,

    /// Separator at which `-keys` stops listing (`""` lists every key).
    #[arg(long, default_value = "/", value_name = "string")]
    pub separator: String,

    /// `KEY_OR_PREFIX`.
    #[arg(value_name = "KEY_OR_PREFIX")]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `kv put`.
#[derive(Debug, clap::Args)]
pub struct KvPutArgs {
    /// Perform a Check-And-Set operation (needs -modify-index).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub cas: bool,

    /// Unsigned integer value to assign to this key-value pair.
    #[arg(long = "flags", default_value_t = 0, value_name = "uint")]
    pub flags: u64,

    /// Treat the data as base 64 encoded.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub base64: bool,

    /// ModifyIndex of the key, for -cas.
    #[arg(long = "modify-index", default_value_t = 0, value_name = "uint")]
    pub modify_index: u64,

    /// Session ID, for -acquire and -release.
    #[arg(long, value_name = "string")]
    pub session: Option<String>,

    /// Obtain a lock on the key (creates it if needed); needs -session.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub acquire: bool,

    /// Forfeit the lock held by -session on the key.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub release: bool,

    /// `KEY [DATA]`: DATA may be `@file` or `-` for stdin.
    #[arg(value_name = "KEY [DATA]")]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `kv delete`.
#[derive(Debug, clap::Args)]
pub struct KvDeleteArgs {
    /// Perform a Check-And-Set operation (needs -modify-index).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub cas: bool,

    /// ModifyIndex of the key, for -cas.
    #[arg(long = "modify-index", default_value_t = 0, value_name = "uint")]
    pub modify_index: u64,

    /// Delete every key under the prefix.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub recurse: bool,

    /// `KEY_OR_PREFIX`.
    #[arg(value_name = "KEY_OR_PREFIX")]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `kv export`.
#[derive(Debug, clap::Args)]
pub struct KvExportArgs {
    /// `[PREFIX]`.
    #[arg(value_name = "PREFIX")]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `kv import`.
#[derive(Debug, clap::Args)]
pub struct KvImportArgs {
    /// Key prefix to prepend to every imported key.
    #[arg(long, default_value = "", value_name = "string")]
    pub prefix: String,

    /// `DATA`: the JSON of `kv export`, `@file` or `-` for stdin.
    #[arg(value_name = "DATA")]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `kv`.
pub async fn run(args: KvArgs) -> anyhow::Result<i32> {
    Ok(match args.command {
        KvCommand::Get(a) => get(a).await,
        KvCommand::Put(a) => put(a).await,
        KvCommand::Delete(a) => delete(a).await,
        KvCommand::Export(a) => export(a).await,
        KvCommand::Import(a) => import(a).await,
    })
}

/// The optional single `KEY_OR_PREFIX` argument, without a leading `/` (keys
/// never start with one; Consul strips it as a courtesy).
fn key_arg(args: &[String]) -> Result<String, String> {
    match args {
        [] => Ok(String::new()),
        [key] => Ok(key.strip_prefix('/').unwrap_or(key).to_string()),
        _ => Err(format!(
            "Too many arguments (expected 1, got {})",
            args.len()
        )),
    }
}

/// Reads a DATA argument: `@file` reads the file, `-` reads stdin, anything
/// else is the data itself.
fn read_data(data: &str) -> Result<Vec<u8>, String> {
    if let Some(path) = data.strip_prefix('@') {
        return std::fs::read(path).map_err(|e| format!("Failed to read file: {e}"));
    }
    if data == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("Failed to read stdin: {e}"))?;
        return Ok(buf);
    }
    Ok(data.as_bytes().to_vec())
}

fn client_or_fail(http: &HttpFlags) -> Result<(Client, QueryOptions), i32> {
    match http.client() {
        Ok(c) => Ok((c, http.query_options())),
        Err(msg) => Err(fail(msg)),
    }
}

async fn get(args: KvGetArgs) -> i32 {
    let key = match key_arg(&args.args) {
        Ok(k) => k,
        Err(msg) => return fail(msg),
    };
    if key.is_empty() && !(args.recurse || args.keys) {
        return fail("Error! Missing KEY argument");
    }
    let (client, opts) = match client_or_fail(&args.http) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let encode = |value: &Option<Vec<u8>>| -> Vec<u8> {
        let value = value.as_deref().unwrap_or_default();
        if args.base64 {
            STANDARD.encode(value).into_bytes()
        } else {
            value.to_vec()
        }
    };
    if args.keys {
        return match client.kv_keys(&key, Some(&args.separator), &opts).await {
            Ok((keys, _)) => {
                for k in keys {
                    println!("{k}");
                }
                0
            }
            Err(e) => fail_client("Error querying Consul agent", &e),
        };
    }
    if args.recurse {
        let pairs = match client.kv_list(&key, &opts).await {
            Ok((pairs, _)) => pairs,
            Err(e) => return fail_client("Error querying Consul agent", &e),
        };
        for (i, pair) in pairs.iter().enumerate() {
            if args.detailed {
                print_bytes(&kv_detailed(pair, args.base64));
                if i + 1 < pairs.len() {
                    println!();
                }
            } else {
                let mut line = format!("{}:", pair.key).into_bytes();
                line.extend(encode(&pair.value));
                print_bytes(&line);
            }
        }
        return 0;
    }
    let pair = match client.kv_get(&key, &opts).await {
        Ok((Some(pair), _)) => pair,
        Ok((None, _)) => return fail(format!("Error! No key exists at: {key}")),
        Err(e) => return fail_client("Error querying Consul agent", &e),
    };
    if args.detailed {
        print_bytes(&kv_detailed(&pair, args.base64));
    } else {
        print_bytes(&encode(&pair.value));
    }
    0
}

async fn put(args: KvPutArgs) -> i32 {
    let (key, data) = match args.args.as_slice() {
        [] => return fail("Error! Missing KEY argument"),
        [key] => (key.clone(), Vec::new()),
        [key, data] => match read_data(data) {
            Ok(d) => (key.clone(), d),
            Err(msg) => return fail(format!("Error! {msg}")),
        },
        more => {
            return fail(format!(
                "Error! Too many arguments (expected 1 or 2, got {})",
                more.len()
            ));
        }
    };
    let value = if args.base64 {
        // Trimmed because base64 read from a file or stdin usually ends in a newline.
        match STANDARD.decode(data.trim_ascii()) {
            Ok(v) => v,
            Err(e) => return fail(format!("Error! Cannot base 64 decode data: {e}")),
        }
    } else {
        data
    };
    let session = args.session.clone().filter(|s| !s.is_empty());
    if (args.release || args.acquire) && session.is_none() {
        return fail("Error! Missing -session (required with -acquire and -release)");
    }
    if args.cas && args.modify_index == 0 {
        return fail("Must specify -modify-index with -cas!");
    }
    let (client, _) = match client_or_fail(&args.http) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut opts = KvPutOptions {
        flags: args.flags,
        ..KvPutOptions::default()
    };
    if args.cas {
        opts.cas = Some(args.modify_index);
        return match client.kv_put(&key, &value, &opts).await {
            Ok(true) => success(format!("Success! Data written to: {key}")),
            Ok(false) => fail(format!("Error! Did not write to {key}: CAS failed")),
            Err(e) => fail_client(&format!("Error! Did not write to {key}"), &e),
        };
    }
    if args.acquire {
        opts.acquire = session;
        return match client.kv_put(&key, &value, &opts).await {
            Ok(true) => success(format!("Success! Lock acquired on: {key}")),
            Ok(false) => fail("Error! Did not acquire lock"),
            Err(e) => fail_client("Error! Failed writing data", &e),
        };
    }
    if args.release {
        opts.release = session;
        return match client.kv_put(&key, &value, &opts).await {
            Ok(true) => success(format!("Success! Lock released on: {key}")),
            Ok(false) => fail("Error! Did not release lock"),
            Err(e) => fail_client("Error! Failed writing data", &e),
        };
    }
    match client.kv_put(&key, &value, &opts).await {
        Ok(_) => success(format!("Success! Data written to: {key}")),
        Err(e) => fail_client("Error! Failed writing data", &e),
    }
}

async fn delete(args: KvDeleteArgs) -> i32 {
    let key = match key_arg(&args.args) {
        Ok(k) => k,
        Err(msg) => return fail(msg),
    };
    if key.is_empty() && !args.recurse {
        return fail("Error! Missing KEY argument");
    }
    // Checked before the -modify-index rules so `-cas -recurse` gets the message
    // that names the real conflict.
    if args.recurse && args.cas {
        return fail("Cannot specify both -cas and -recurse!");
    }
    if args.cas && args.modify_index == 0 {
        return fail(
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.",
        );
    }
    if args.modify_index != 0 && !args.cas {
        return fail("Cannot specify -modify-index without -cas!");
    }
    let (client, _) = match client_or_fail(&args.http) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.recurse {
        return match client.kv_delete(&key, true, None).await {
            Ok(_) => success(format!("Success! Deleted keys with prefix: {key}")),
            Err(e) => fail_client(&format!("Error! Did not delete prefix {key}"), &e),
        };
    }
    if args.cas {
        return match client.kv_delete(&key, false, Some(args.modify_index)).await {
            Ok(true) => success(format!("Success! Deleted key: {key}")),
            Ok(false) => fail(format!("Error! Did not delete key {key}: CAS failed")),
            Err(e) => fail_client(&format!("Error! Did not delete key {key}"), &e),
        };
    }
    match client.kv_delete(&key, false, None).await {
        Ok(_) => success(format!("Success! Deleted key: {key}")),
        Err(e) => fail_client(&format!("Error deleting key {key}"), &e),
    }
}

async fn export(args: KvExportArgs) -> i32 {
    let prefix = match key_arg(&args.args) {
        Ok(k) => k,
        Err(msg) => return fail(msg),
    };
    let (client, opts) = match client_or_fail(&args.http) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let pairs = match client.kv_list(&prefix, &opts).await {
        Ok((pairs, _)) => pairs,
        Err(e) => return fail_client("Error querying Consul agent", &e),
    };
    let entries: Vec<KvExportEntry> = pairs
        .into_iter()
        .map(|p| KvExportEntry {
            key: p.key,
            flags: p.flags,
            value: STANDARD.encode(p.value.unwrap_or_default()),
        })
        .collect();
    match go_json_indent(&entries, "\t") {
        Ok(text) => success(text),
        Err(e) => fail(format!("Error exporting KV data: {e}")),
    }
}

async fn import(args: KvImportArgs) -> i32 {
    let data = match args.args.as_slice() {
        [] => return fail("Error! Missing DATA argument"),
        [data] if data.is_empty() => return fail("Error! Empty DATA argument"),
        [data] => match read_data(data) {
            Ok(d) => d,
            Err(msg) => return fail(format!("Error! {msg}")),
        },
        more => {
            return fail(format!(
                "Error! Too many arguments (expected 1, got {})",
                more.len()
            ));
        }
    };
    let (client, _) = match client_or_fail(&args.http) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Go's decoder matches field names case-insensitively; so does ours.
    let entries: Vec<KvExportEntry> = match registry_api::decode::from_slice(&data) {
        Ok(e) => e,
        Err(e) => return fail(format!("Cannot unmarshal data: {e}")),
    };
    for entry in entries {
        let value = match STANDARD.decode(entry.value.as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                return fail(format!(
                    "Error base 64 decoding value for key {}: {e}",
                    entry.key
                ));
            }
        };
        let key = import_key(&args.prefix, &entry.key);
        let opts = KvPutOptions {
            flags: entry.flags,
            ..KvPutOptions::default()
        };
        if let Err(e) = client.kv_put(&key, &value, &opts).await {
            return fail_client(&format!("Error! Failed writing data for key {key}"), &e);
        }
        println!("Imported: {key}");
    }
    0
}

/// The key an imported entry is written to: `prefix/key`. Unlike Go's
/// `path.Join` this keeps a trailing `/` (a "folder" key stays a folder).
fn import_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        return key.to_string();
    }
    let prefix = prefix.trim_end_matches('/');
    let key = key.trim_start_matches('/');
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

fn success(message: impl AsRef<str>) -> i32 {
    println!("{}", message.as_ref());
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        kv: KvArgs,
    }

    fn parse(args: &[&str]) -> KvCommand {
        Cli::try_parse_from(std::iter::once("kv").chain(args.iter().copied()))
            .unwrap()
            .kv
            .command
    }

    #[test]
    fn flags_parse_as_consul_spells_them() {
        let KvCommand::Get(get) =
            parse(&["get", "--recurse", "--detailed=false", "--separator=", "a"])
        else {
            panic!("not get");
        };
        assert!(get.recurse && !get.detailed);
        assert_eq!(get.separator, "");
        assert_eq!(get.args, ["a"]);

        let KvCommand::Put(put) =
            parse(&["put", "--cas", "--modify-index=12", "--flags=42", "k", "-"])
        else {
            panic!("not put");
        };
        assert!(put.cas);
        assert_eq!((put.modify_index, put.flags), (12, 42));
        assert_eq!(put.args, ["k", "-"]);

        let KvCommand::Delete(del) = parse(&["delete", "--recurse=true", "p/"]) else {
            panic!("not delete");
        };
        assert!(del.recurse && !del.cas);
    }

    #[test]
    fn key_argument_rules() {
        assert_eq!(key_arg(&[]).unwrap(), "");
        assert_eq!(key_arg(&["/foo".into()]).unwrap(), "foo");
        assert_eq!(
            key_arg(&["a".into(), "b".into()]).unwrap_err(),
            "Too many arguments (expected 1, got 2)"
        );
    }

    #[test]
    fn data_argument_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        std::fs::write(&path, b"from file").unwrap();
        assert_eq!(
            read_data(&format!("@{}", path.display())).unwrap(),
            b"from file"
        );
        assert_eq!(read_data("plain").unwrap(), b"plain");
        assert!(
            read_data("@/does/not/exist")
                .unwrap_err()
                .starts_with("Failed to read file")
        );
    }

    #[test]
    fn import_prefix_joins_keys() {
        assert_eq!(import_key("", "a/b"), "a/b");
        assert_eq!(import_key("sub", "a/b"), "sub/a/b");
        assert_eq!(import_key("sub/", "/a/"), "sub/a/");
    }
}
