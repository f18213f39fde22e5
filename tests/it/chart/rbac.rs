//! The chart's RBAC for the controller (mock/aws providers), enforced by the sandbox: enough and not more.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_is_enough_for_the_controller_and_no_more() {
    let w = World::start_with(MockCloudConfig {
        nodes: 2,
        enforce_rbac: true,
        ..MockCloudConfig::default()
    })
    .await;
    // Enforcement: a token the sandbox did not issue → 401. (A kubeconfig with no credentials
    // at all makes kubectl prompt for a username over HTTPS, which needs a terminal.)
    let anon = w.dir.path().join("anon.kubeconfig");
    std::fs::write(
        &anon,
        frontdesk_mock_cloud::kube::sandbox::kubeconfig_yaml_with_token(
            &w.cloud.kube_url(),
            Some("not-issued-by-this-sandbox"),
        ),
    )
    .unwrap();
    let (ok, _, err) = crate::support::kubectl(&anon, w.dir.path(), &["get", "svc"], None).await;
    // kubectl's wording for a 401.
    assert!(
        !ok && err.contains("You must be logged in to the server"),
        "{err}"
    );

    // Install the chart's objects as the admin (the kubeconfig of World carries its token).
    w.kubectl_ok(&["create", "namespace", "frontdesk"]).await;
    let stream = render(&example_values("mock"), "frontdesk", "frontdesk").unwrap();
    let docs = docs(&stream);
    apply(&w, &stream).await;

    // `kubectl create token` (TokenRequest) for the controller's ServiceAccount.
    let token = w
        .kubectl_ok(&["-n", "frontdesk", "create", "token", "frontdesk-controller"])
        .await;
    let sa_kubeconfig = kubeconfig_with_token(&w, token.trim(), "controller.kubeconfig");
    let sa_client = client_for(&sa_kubeconfig).await;

    // The controller, as that ServiceAccount, with the chart's config file (leader election in
    // the release namespace) and test-speed timings.
    let chart_config = rendered_config(&docs);
    let mut config = test_config();
    config.leader_election = chart_config.leader_election.clone();
    config.leader_election.lease_duration_seconds = 3.0;
    config.leader_election.renew_interval_seconds = 0.5;
    let metrics = Arc::new(Metrics::new());
    let provider = mock_provider(&w, metrics.clone());
    let ctl = start_controller_with(sa_client.clone(), provider, config, metrics).await;
    eventually(WAIT, "the controller leads", || async {
        (ctl.metrics.leader.get() == 1).then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "frontdesk");
    let lease = leases.get("frontdesk-controller").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());

    // Its whole job: provision, flip the type (clean up), back to LoadBalancer, delete.
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    eventually(WAIT, "an address", || external_ip(&api, "my-app-service")).await;
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "-p",
        r#"{"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"nodePort":null}]}}"#,
    ])
    .await;
    eventually(WAIT, "cleanup after the type flip", || async {
        let s = api.get("my-app-service").await.ok()?;
        let clean = s.metadata.finalizers.unwrap_or_default().is_empty()
            && w.cloud.generic.cloud().all().is_empty();
        clean.then_some(())
    })
    .await;
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ])
    .await;
    eventually(WAIT, "an address again", || {
        external_ip(&api, "my-app-service")
    })
    .await;
    w.kubectl_ok(&["delete", "svc", "my-app-service", "--timeout=30s"])
        .await;
    assert!(w.cloud.generic.cloud().all().is_empty());
    let events = w
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=DeletedLoadBalancer",
        ])
        .await;
    assert!(events.contains("DeletedLoadBalancer"), "{events}");

    // Enough: nothing the controller tried was refused.
    let denied: Vec<AuditEntry> = sa_decisions(&w)
        .into_iter()
        .filter(|e| !e.allowed)
        .collect();
    assert!(denied.is_empty(), "the chart's RBAC refused: {denied:#?}");
    // Not more: every verb the chart grants was used.
    let used = sa_decisions(&w);
    for (group, resource, verb) in granted(&docs) {
        assert!(
            used.iter()
                .any(|e| e.api_group == group && e.resource == resource && e.verb == verb),
            "the chart grants {verb} on {resource} (group {group:?}) but the controller never used it"
        );
    }

    // Outside the rules: refused with upstream's 403.
    let secrets: Api<Secret> = Api::all(sa_client.clone());
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                format!(
                    "secrets is forbidden: User \"{SA_USER}\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
                )
            );
        }
        other => panic!("listing secrets must be forbidden: {other:?}"),
    }
    let svcs: Api<Service> = Api::namespaced(sa_client.clone(), "default");
    match svcs.delete("kubernetes", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("deleting a Service must be forbidden: {other:?}"),
    }
    let (ok, _, err) = crate::support::kubectl(
        &sa_kubeconfig,
        w.dir.path(),
        &["-n", "kube-system", "get", "lease", "other-lease"],
        None,
    )
    .await;
    assert!(!ok, "a lease outside the chart's resourceNames");
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): leases.coordination.k8s.io \"other-lease\" is forbidden: User \"{SA_USER}\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""
        )),
        "{err}"
    );

    ctl.stop().await;
    w.shutdown().await;
}
