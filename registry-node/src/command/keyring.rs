//! `registry-node keyring`: list, install, use or remove gossip encryption keys
//! (`/v1/operator/keyring`), with Consul's flags, output and exit codes.

use registry_api::KeyringResponse;
use registry_api::client::Client;

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{fail, fail_client};

/// Consul's help text, printed (to stderr, exit 1) when no action is given.
const HELP: &str = "Usage: registry-node keyring [options]

  Manages encryption keys used for gossip messages. Gossip encryption is
  optional. When enabled, this command may be used to examine active encryption
  keys in the cluster, add new keys, and remove old ones. When combined, this
  functionality provides the ability to perform key rotation cluster-wide,
  without disrupting the cluster.

  Exactly one action is required: -list, -list-primary, -install=<key>,
  -use=<key> or -remove=<key>.

  All variations of the keyring command return 0 if all nodes reply and there
  are no errors. If any node fails to reply or reports failure, the exit code
  will be 1.";

/// Highest `-relay-factor` Consul accepts.
const MAX_RELAY_FACTOR: i64 = 5;

/// Arguments of `keyring`.
#[derive(Debug, clap::Args)]
pub struct KeyringArgs {
    /// Install a new encryption key. This will broadcast the new key to all
    /// members in the cluster.
    #[arg(long, value_name = "key")]
    pub install: Option<String>,

    /// Change the primary encryption key, which is used to encrypt messages.
    /// The key must already be installed before this operation can succeed.
    #[arg(long = "use", value_name = "key")]
    pub use_key: Option<String>,

    /// Remove the given key from the cluster. This operation may only be
    /// performed on keys which are not currently the primary key.
    #[arg(long, value_name = "key")]
    pub remove: Option<String>,

    /// List all keys currently in use within the cluster.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub list: bool,

    /// List all primary keys currently in use within the cluster.
    #[arg(
        long = "list-primary",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub list_primary: bool,

    /// Relay responses through this many randomly chosen other nodes (max 5).
    #[arg(
        long = "relay-factor",
        default_value_t = 0,
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub relay_factor: i64,

    /// Only ask local servers (no WAN traffic); list queries only.
    #[arg(
        long = "local-only",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub local_only: bool,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// The one operation a `keyring` invocation performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `-list`.
    List,
    /// `-list-primary`.
    ListPrimary,
    /// `-install=KEY`.
    Install(String),
    /// `-use=KEY`.
    Use(String),
    /// `-remove=KEY`.
    Remove(String),
}

/// Why the flags do not make one valid operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// No action: Consul prints the help text.
    NoAction,
    /// More than one action.
    TooMany,
    /// `-relay-factor` out of `[0, 5]`.
    RelayFactor,
    /// `-local-only` without `-list`.
    LocalOnly,
}

impl ArgError {
    /// The text Consul prints for this error.
    pub fn message(&self) -> &'static str {
        match self {
            ArgError::NoAction => HELP,
            ArgError::TooMany => "Only a single action is allowed",
            ArgError::RelayFactor => {
                "Error parsing relay factor: Relay factor must be in range: [0, 5]"
            }
            ArgError::LocalOnly => {
                "Error validating local-only: local-only can only be set for list requests"
            }
        }
    }
}

/// Validates the flags as Consul does, in its order: the number of actions
/// (an empty key counts as no action), the relay factor, then `-local-only`
/// (accepted with `-list` only). Returns the action and the relay factor.
pub fn parse_action(args: &KeyringArgs) -> Result<(Action, u8), ArgError> {
    let key = |k: &Option<String>| k.clone().filter(|k| !k.is_empty());
    let mut actions = Vec::new();
    if args.list {
        actions.push(Action::List);
    }
    if args.list_primary {
        actions.push(Action::ListPrimary);
    }
    if let Some(k) = key(&args.install) {
        actions.push(Action::Install(k));
    }
    if let Some(k) = key(&args.use_key) {
        actions.push(Action::Use(k));
    }
    if let Some(k) = key(&args.remove) {
        actions.push(Action::Remove(k));
    }
    let action = match actions.len() {
        0 => return Err(ArgError::NoAction),
        1 => actions.remove(0),
        _ => return Err(ArgError::TooMany),
    };
    if !(0..=MAX_RELAY_FACTOR).contains(&args.relay_factor) {
        return Err(ArgError::RelayFactor);
    }
    let relay = u8::try_from(args.relay_factor).map_err(|_| ArgError::RelayFactor)?;
    if args.local_only && !args.list {
        return Err(ArgError::LocalOnly);
    }
    Ok((action, relay))
}

/// One pool of `-list` / `-list-primary` as Consul prints it: a blank line, the
/// pool name (`WAN`, `dc1 (LAN)`, `dc1 (LAN) [segment]`, `[partition: p]` for a
/// non-default partition), node messages, then `  <key> [<n>/<total>]` per key.
/// No trailing newline.
pub fn format_pool(pool: &KeyringResponse, primary: bool) -> String {
    let mut out = String::from("\n");
    out.push_str(&if pool.wan {
        "WAN".to_string()
    } else {
        format!("{} (LAN)", pool.datacenter)
    });
    if !pool.segment.is_empty() {
        out.push_str(&format!(" [{}]", pool.segment));
    } else if !pool.partition.is_empty() && pool.partition != "default" {
        out.push_str(&format!(" [partition: {}]", pool.partition));
    }
    out.push_str(":\n");
    for (from, msg) in &pool.messages {
        out.push_str(&format!("  ===> {from}: {msg}\n"));
    }
    let keys = if primary {
        &pool.primary_keys
    } else {
        &pool.keys
    };
    for (key, count) in keys {
        out.push_str(&format!("  {key} [{count}/{}]\n", pool.num_nodes));
    }
    out.trim_end_matches('\n').to_string()
}

/// Runs `keyring`: exit 0 when the operation succeeded, 1 otherwise.
pub async fn run(args: KeyringArgs) -> anyhow::Result<i32> {
    let (action, relay) = match parse_action(&args) {
        Ok(parsed) => parsed,
        Err(ArgError::NoAction) => {
            eprintln!("{HELP}");
            return Ok(1);
        }
        Err(e) => return Ok(fail(e.message())),
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    Ok(perform(&client, action, relay, args.local_only).await)
}

async fn perform(client: &Client, action: Action, relay: u8, local_only: bool) -> i32 {
    let (primary, banner) = match &action {
        Action::List => (false, "Gathering installed encryption keys..."),
        Action::ListPrimary => (true, "Gathering installed primary encryption keys..."),
        Action::Install(_) => (false, "Installing new gossip encryption key..."),
        Action::Use(_) => (false, "Changing primary gossip encryption key..."),
        Action::Remove(_) => (false, "Removing gossip encryption key..."),
    };
    println!("==> {banner}");
    let result = match action {
        Action::List | Action::ListPrimary => match client.keyring_list(relay, local_only).await {
            Ok(pools) => {
                for pool in &pools {
                    println!("{}", format_pool(pool, primary));
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
        Action::Install(key) => client.keyring_install(&key, relay).await,
        Action::Use(key) => client.keyring_use(&key, relay).await,
        Action::Remove(key) => client.keyring_remove(&key, relay).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => fail_client("error", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: KeyringArgs,
    }

    fn parse(argv: &[&str]) -> Result<(Action, u8), ArgError> {
        let mut all = vec!["keyring"];
        all.extend_from_slice(argv);
        parse_action(&Cmd::try_parse_from(all).unwrap().args)
    }

    #[test]
    fn exactly_one_action() {
        assert_eq!(parse(&["--list"]), Ok((Action::List, 0)));
        assert_eq!(parse(&["--list-primary"]), Ok((Action::ListPrimary, 0)));
        assert_eq!(
            parse(&["--install=K2", "--relay-factor=3"]),
            Ok((Action::Install("K2".into()), 3))
        );
        assert_eq!(parse(&["--use", "K2"]), Ok((Action::Use("K2".into()), 0)));
        assert_eq!(
            parse(&["--remove=K1"]),
            Ok((Action::Remove("K1".into()), 0))
        );
        assert_eq!(parse(&[]), Err(ArgError::NoAction));
        // An empty key is no action, as in Consul.
        assert_eq!(parse(&["--install="]), Err(ArgError::NoAction));
        assert_eq!(parse(&["--list", "--install=K2"]), Err(ArgError::TooMany));
        assert_eq!(parse(&["--use=a", "--remove=b"]), Err(ArgError::TooMany));
        assert_eq!(
            ArgError::TooMany.message(),
            "Only a single action is allowed"
        );
    }

    #[test]
    fn relay_factor_and_local_only() {
        assert_eq!(
            parse(&["--list", "--relay-factor=5"]),
            Ok((Action::List, 5))
        );
        assert_eq!(
            parse(&["--list", "--relay-factor=6"]),
            Err(ArgError::RelayFactor)
        );
        assert_eq!(
            parse(&["--list", "--relay-factor=-1"]),
            Err(ArgError::RelayFactor)
        );
        assert_eq!(parse(&["--list", "--local-only"]), Ok((Action::List, 0)));
        assert_eq!(
            parse(&["--use=k", "--local-only"]),
            Err(ArgError::LocalOnly)
        );
        assert_eq!(
            ArgError::LocalOnly.message(),
            "Error validating local-only: local-only can only be set for list requests"
        );
    }

    #[test]
    fn pools_print_like_consul() {
        let pool = KeyringResponse {
            datacenter: "dc1".into(),
            keys: [("b2xk".to_string(), 2), ("bmV3".to_string(), 3)].into(),
            primary_keys: [("bmV3".to_string(), 3)].into(),
            num_nodes: 3,
            ..KeyringResponse::default()
        };
        assert_eq!(
            format_pool(&pool, false),
            "\ndc1 (LAN):\n  b2xk [2/3]\n  bmV3 [3/3]"
        );
        assert_eq!(format_pool(&pool, true), "\ndc1 (LAN):\n  bmV3 [3/3]");
        let wan = KeyringResponse {
            wan: true,
            segment: "alpha".into(),
            messages: [("n2".to_string(), "failed".to_string())].into(),
            num_nodes: 1,
            ..pool.clone()
        };
        assert_eq!(
            format_pool(&wan, true),
            "\nWAN [alpha]:\n  ===> n2: failed\n  bmV3 [3/1]"
        );
        let partition = KeyringResponse {
            partition: "team".into(),
            keys: Default::default(),
            ..pool
        };
        assert_eq!(
            format_pool(&partition, false),
            "\ndc1 (LAN) [partition: team]:"
        );
    }
}
