//! DNS on client agents. They keep no store, so a question goes to a server
//! over RPC ([`crate::rpc::RpcRequest::Dns`]) with the client's own
//! `dns_config`; the server answers from its store ([`serve`]) and the
//! sections come back as one encoded DNS message. UDP limits and EDNS stay
//! with the client, which knows how the question arrived.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hickory_server::proto::op::{Message, MessageType, OpCode};
use hickory_server::proto::rr::{Name, RecordType};

use super::DnsOptions;
use super::answer::Answer;
use super::cache::InstanceCache;
use super::server::StoreReader;
use crate::agent::Agent;
use crate::rpc::{DnsCall, DnsReply};

/// How long a server may take (it may have to confirm a read with the leader).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Asks a server; `Ok(None)` when the name is unknown there (see [`DnsReply`]).
pub async fn ask(
    agent: &Agent,
    opts: &DnsOptions,
    qname: &Name,
    qtype: RecordType,
    max_answers: usize,
) -> Result<Option<Answer>, String> {
    let call = DnsCall {
        qname: qname.to_ascii(),
        qtype: u16::from(qtype),
        options: opts.clone(),
        max_answers: u32::try_from(max_answers).unwrap_or(u32::MAX),
    };
    let reply = agent
        .servers
        .dns(call, TIMEOUT)
        .await
        .map_err(|e| e.to_string())??;
    reply.map(|b64| decode(&b64)).transpose()
}

/// Answers a client agent's question on a server.
pub async fn serve(agent: &Agent, cache: &InstanceCache, call: DnsCall) -> DnsReply {
    let qname = Name::from_ascii(&call.qname).map_err(|e| format!("bad name: {e}"))?;
    let qtype = RecordType::from(call.qtype);
    let max = usize::try_from(call.max_answers).unwrap_or(usize::MAX);
    let reader = StoreReader {
        agent,
        opts: &call.options,
        cache,
    };
    match reader.resolve(&qname, qtype, max).await? {
        Some(answer) => encode(&answer).map(Some),
        None => Ok(None),
    }
}

fn encode(answer: &Answer) -> Result<String, String> {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.response_code = answer.rcode;
    m.add_answers(answer.answers.iter().cloned());
    m.add_authorities(answer.authority.iter().cloned());
    m.add_additionals(answer.additionals.iter().cloned());
    m.to_vec()
        .map(|bytes| B64.encode(bytes))
        .map_err(|e| format!("cannot encode the answer: {e}"))
}

fn decode(b64: &str) -> Result<Answer, String> {
    let bytes = B64.decode(b64).map_err(|e| format!("bad answer: {e}"))?;
    let m = Message::from_vec(&bytes).map_err(|e| format!("bad answer: {e}"))?;
    Ok(Answer {
        rcode: m.metadata.response_code,
        answers: m.answers,
        authority: m.authorities,
        additionals: m.additionals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::ResponseCode;
    use hickory_server::proto::rr::rdata::{A, SRV};
    use hickory_server::proto::rr::{RData, Record};

    #[test]
    fn answers_survive_the_trip() {
        let q = Name::from_ascii("web.service.consul.").unwrap();
        let t = Name::from_ascii("n1.node.dc1.consul.").unwrap();
        let a = Answer {
            rcode: ResponseCode::NXDomain,
            answers: vec![Record::from_rdata(
                q,
                7,
                RData::SRV(SRV::new(1, 1, 80, t.clone())),
            )],
            authority: Vec::new(),
            additionals: vec![Record::from_rdata(t, 7, RData::A(A([10, 0, 0, 1].into())))],
        };
        assert_eq!(decode(&encode(&a).unwrap()).unwrap(), a);
    }
}
