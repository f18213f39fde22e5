//! Integration tests: the real binaries and clients (kube-rs, `kubectl`, HTTP) against the
//! sandbox cluster and the mock cloud, all on loopback. One test binary, many modules.

mod support;

mod aws;
mod baremetal;
mod bench;
mod chart;
mod chart_baremetal;
mod cli;
mod controller;
mod sandbox_api;
mod sandbox_kubectl;
mod sandbox_nodeports;
mod sandbox_protobuf;
mod speaker;
