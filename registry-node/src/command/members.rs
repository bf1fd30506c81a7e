//! `registry-node members`: the gossip members as the agent sees them, in
//! Consul's table (`/v1/agent/members`).

use regex::Regex;
use registry_api::{Member, MemberStatus};

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{columnize, fail, fail_client};

/// Member tag holding the role: `consul` for servers, `node` for clients.
const TAG_ROLE: &str = "role";
/// Member tag holding the admin partition (Enterprise; always `default` here).
const TAG_PARTITION: &str = "ap";
/// Member tag holding the network segment (Enterprise).
const TAG_SEGMENT: &str = "segment";

/// Arguments of `members`.
#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// Provides detailed information about nodes.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub detailed: bool,

    /// If the agent is in server mode, return the other peers in the WAN pool.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub wan: bool,

    /// Only show nodes whose status matches this regular expression.
    #[arg(long, default_value = ".*", value_name = "regex")]
    pub status: String,

    /// Filter to use with the request.
    #[arg(long, value_name = "expression")]
    pub filter: Option<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `members`: exit 0 with a table, 2 when no member matches, 1 on error.
pub async fn run(args: MembersArgs) -> anyhow::Result<i32> {
    let status_re = match Regex::new(&args.status) {
        Ok(re) => re,
        Err(e) => return Ok(fail(format!("Failed to compile status regexp: {e}"))),
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    let mut opts = args.http.query_options();
    opts.filter = args.filter.clone();
    let members = match client.agent_members(args.wan, &opts).await {
        Ok((members, _)) => members,
        Err(e) => return Ok(fail_client("Error retrieving members", &e)),
    };
    match members_table(members, args.detailed, &status_re) {
        Some(table) => {
            println!("{table}");
            Ok(0)
        }
        None => Ok(2),
    }
}

/// Builds the `members` table; `None` when no member's status matches.
pub fn members_table(
    mut members: Vec<Member>,
    detailed: bool,
    status_re: &Regex,
) -> Option<String> {
    for m in &mut members {
        // Consul fills in the Enterprise tags before printing and sorting.
        let partition = m.tags.entry(TAG_PARTITION.to_string()).or_default();
        if partition.is_empty() {
            *partition = "default".to_string();
        }
        let is_server = m.tags.get(TAG_ROLE).map(String::as_str) == Some("consul");
        let segment = m.tags.entry(TAG_SEGMENT.to_string()).or_default();
        if is_server {
            *segment = "<all>".to_string();
        } else if segment.is_empty() {
            *segment = "<default>".to_string();
        }
    }
    members.retain(|m| status_re.is_match(status_str(m)));
    if members.is_empty() {
        return None;
    }
    members.sort_by(|a, b| {
        let key = |m: &Member| {
            let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
            let partition = tag(TAG_PARTITION);
            let default_partition = partition.is_empty() || partition == "default";
            (
                tag(TAG_ROLE) != "consul",
                !default_partition,
                tag(TAG_SEGMENT),
                partition,
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });

    let mut rows = Vec::with_capacity(members.len() + 1);
    if detailed {
        rows.push(vec![
            "Node".into(),
            "Address".into(),
            "Status".into(),
            "Tags".into(),
        ]);
        for m in &members {
            let tags = m
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>();
            rows.push(vec![
                m.name.clone(),
                address(m),
                status_str(m).into(),
                tags.join(","),
            ]);
        }
    } else {
        rows.push(
            [
                "Node",
                "Address",
                "Status",
                "Type",
                "Build",
                "Protocol",
                "DC",
                "Partition",
                "Segment",
            ]
            .map(String::from)
            .to_vec(),
        );
        for m in &members {
            rows.push(standard_row(m));
        }
    }
    Some(columnize(&rows))
}

fn standard_row(m: &Member) -> Vec<String> {
    let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
    let kind = match tag(TAG_ROLE).as_str() {
        "consul" => "server",
        "node" => "client",
        _ => {
            let mut row = vec![
                m.name.clone(),
                address(m),
                status_str(m).into(),
                "unknown".into(),
            ];
            row.extend(std::iter::repeat_n(String::new(), 5));
            return row;
        }
    };
    let build = match tag("build") {
        b if b.is_empty() => "< 0.3".to_string(),
        b => b.split(':').next().unwrap_or_default().to_string(),
    };
    vec![
        m.name.clone(),
        address(m),
        status_str(m).into(),
        kind.into(),
        build,
        tag("vsn"),
        tag("dc"),
        tag(TAG_PARTITION),
        tag(TAG_SEGMENT),
    ]
}

fn status_str(m: &Member) -> &'static str {
    MemberStatus::from_code(m.status).as_str()
}

/// `ip:port`, with brackets around an IPv6 address (Go's `net.TCPAddr`).
fn address(m: &Member) -> String {
    if m.addr.contains(':') {
        format!("[{}]:{}", m.addr, m.port)
    } else {
        format!("{}:{}", m.addr, m.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, addr: &str, role: &str, status: u8) -> Member {
        let mut m = Member {
            name: name.into(),
            addr: addr.into(),
            port: 8301,
            status,
            ..Member::default()
        };
        m.tags.insert("role".into(), role.into());
        m.tags.insert("dc".into(), "dc1".into());
        m.tags.insert("vsn".into(), "2".into());
        m.tags.insert("build".into(), "0.1.0:abcdef".into());
        m
    }

    #[test]
    fn servers_first_then_by_name() {
        let members = vec![
            member("client-a", "10.0.0.3", "node", 1),
            member("server-b", "10.0.0.2", "consul", 1),
            member("server-a", "10.0.0.1", "consul", 4),
        ];
        let table = members_table(members, false, &Regex::new(".*").unwrap()).unwrap();
        let expected = "\
Node      Address        Status  Type    Build  Protocol  DC   Partition  Segment
server-a  10.0.0.1:8301  failed  server  0.1.0  2         dc1  default    <all>
server-b  10.0.0.2:8301  alive   server  0.1.0  2         dc1  default    <all>
client-a  10.0.0.3:8301  alive   client  0.1.0  2         dc1  default    <default>";
        assert_eq!(table, expected);
    }

    #[test]
    fn status_filter_and_no_match() {
        let members = vec![
            member("a", "10.0.0.1", "consul", 1),
            member("b", "::1", "node", 4),
        ];
        let table = members_table(members.clone(), false, &Regex::new("failed").unwrap()).unwrap();
        assert_eq!(table.lines().count(), 2);
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("b     [::1]:8301  failed  client")
        );
        assert!(members_table(members, false, &Regex::new("left").unwrap()).is_none());
    }

    #[test]
    fn detailed_lists_sorted_tags_and_unknown_role_has_empty_columns() {
        let members = vec![member("a", "10.0.0.1", "consul", 1)];
        let table = members_table(members, true, &Regex::new(".*").unwrap()).unwrap();
        assert_eq!(
            table.lines().nth(1).unwrap(),
            "a     10.0.0.1:8301  alive   ap=default,build=0.1.0:abcdef,dc=dc1,role=consul,segment=<all>,vsn=2"
        );
        let odd = vec![member("x", "10.0.0.9", "weird", 1)];
        let table = members_table(odd, false, &Regex::new(".*").unwrap()).unwrap();
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("x     10.0.0.9:8301  alive   unknown")
        );
    }
}
