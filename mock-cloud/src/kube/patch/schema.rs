//! Per-field list and map semantics of the built-in kinds, shared by strategic merge patch and
//! server-side apply.
//!
//! Taken from the Go struct tags in `k8s.io/api` (`patchStrategy`/`patchMergeKey` for SMP,
//! `+listType`/`+listMapKey`/`+mapType`/`+structType` for apply). Only the types the sandbox
//! serves or clients commonly send are described; everything else is [`Ty::Unknown`], where
//! lists are atomic and maps merge key by key, which is what upstream does for a field without
//! tags (and for custom resources without `x-kubernetes-list-type`).

/// How a list merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced as a whole: no `patchStrategy`, `+listType=atomic`.
    Atomic,
    /// Items are objects identified by a key. SMP matches items on `smp_key`
    /// (`patchMergeKey`); apply on `ssa_keys` (`+listMapKey`, which may name more fields).
    Map {
        smp_key: &'static str,
        ssa_keys: &'static [&'static str],
    },
    /// Scalars merged as a set (`patchStrategy:"merge"` on a primitive list, `+listType=set`).
    Set,
}

/// The schema node a value lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// Nothing known: atomic lists, granular maps.
    Unknown,
    /// Root of a kind without special fields (ConfigMap, Lease, a custom resource, ...).
    /// `builtin` says whether `spec`/`status` are Go structs that always exist (see
    /// [`Field::always_present`]).
    Generic {
        builtin: bool,
    },
    ObjectMeta,
    Service,
    ServiceSpec,
    ServiceStatus,
    LoadBalancerStatus,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
    PodTemplate,
    Container,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController.
    Workload,
    WorkloadSpec,
    /// A status whose only tagged field is `conditions` (merge key `type`).
    ConditionsStatus,
    CronJob,
    CronJobSpec,
    JobTemplateSpec,
    Node,
    NodeSpec,
    NodeStatus,
    Namespace,
    ServiceAccount,
}

/// What the schema says about one field of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The type of the field's value; for a list, the type of its items.
    pub ty: Ty,
    /// Meaningful only when the value is a list.
    pub list: ListKind,
    /// An object owned as a whole by apply (`+mapType=atomic`, `+structType=atomic`).
    pub atomic: bool,
    /// A non-pointer Go struct: it exists (possibly empty) in every object, so creating it
    /// does not make the writer own it. Upstream's field manager compares against the Go
    /// zero value, which is why `f:spec` never carries a `.` entry for built-in kinds.
    pub always_present: bool,
}

const fn plain(ty: Ty) -> Field {
    Field {
        ty,
        list: ListKind::Atomic,
        atomic: false,
        always_present: false,
    }
}

const fn present(ty: Ty) -> Field {
    Field {
        ty,
        list: ListKind::Atomic,
        atomic: false,
        always_present: true,
    }
}

const fn keyed(ty: Ty, smp_key: &'static str, ssa_keys: &'static [&'static str]) -> Field {
    Field {
        ty,
        list: ListKind::Map { smp_key, ssa_keys },
        atomic: false,
        always_present: false,
    }
}

const fn set() -> Field {
    Field {
        ty: Ty::Unknown,
        list: ListKind::Set,
        atomic: false,
        always_present: false,
    }
}

const fn atomic() -> Field {
    Field {
        ty: Ty::Unknown,
        list: ListKind::Atomic,
        atomic: true,
        always_present: false,
    }
}

const BY_NAME: &[&str] = &["name"];
const BY_TYPE: &[&str] = &["type"];
const BY_IP: &[&str] = &["ip"];

/// The root type of objects of `group`/`kind`.
pub fn root(group: &str, kind: &str) -> Ty {
    match (group, kind) {
        ("", "Service") => Ty::Service,
        ("", "Pod") => Ty::Pod,
        ("", "PodTemplate") => Ty::PodTemplate,
        ("", "Node") => Ty::Node,
        ("", "Namespace") => Ty::Namespace,
        ("", "ServiceAccount") => Ty::ServiceAccount,
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Ty::Workload,
        ("batch", "CronJob") => Ty::CronJob,
        _ => Ty::Generic {
            builtin: is_builtin_group(group),
        },
    }
}

/// Groups served by kube-apiserver itself; anything else here is a custom resource.
fn is_builtin_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

impl Ty {
    /// The schema of field `name` of an object of this type.
    pub fn field(self, name: &str) -> Field {
        use Ty::*;
        match (self, name) {
            (Unknown, _) => plain(Unknown),
            // ObjectMeta is always there, for custom resources too.
            (Generic { .. }, "metadata") => present(ObjectMeta),
            (Generic { builtin }, "spec" | "status") => Field {
                always_present: builtin,
                ..plain(Unknown)
            },
            (Generic { .. }, _) => plain(Unknown),

            (ObjectMeta, "finalizers") => set(),
            (ObjectMeta, "ownerReferences") => keyed(Unknown, "uid", &["uid"]),

            (
                Service | Pod | PodTemplate | Workload | CronJob | Node | Namespace
                | ServiceAccount,
                "metadata",
            ) => present(ObjectMeta),
            (Service, "spec") => present(ServiceSpec),
            (Service, "status") => present(ServiceStatus),
            (ServiceSpec, "ports") => keyed(Unknown, "port", &["port", "protocol"]),
            (ServiceSpec, "selector") => atomic(),
            (ServiceStatus, "conditions") => keyed(Unknown, "type", BY_TYPE),
            (ServiceStatus, "loadBalancer") => present(LoadBalancerStatus),

            (Pod, "spec") => present(PodSpec),
            (Pod, "status") => present(PodStatus),
            (PodTemplate, "template") => present(PodTemplateSpec),
            (PodTemplateSpec, "metadata") => present(ObjectMeta),
            (PodTemplateSpec, "spec") => present(PodSpec),
            (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                keyed(Container, "name", BY_NAME)
            }
            (PodSpec, "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
                keyed(Unknown, "name", BY_NAME)
            }
            (PodSpec, "hostAliases") => keyed(Unknown, "ip", BY_IP),
            (PodSpec, "topologySpreadConstraints") => keyed(
                Unknown,
                "topologyKey",
                &["topologyKey", "whenUnsatisfiable"],
            ),
            (PodSpec, "nodeSelector") => atomic(),
            (Container, "ports") => keyed(Unknown, "containerPort", &["containerPort", "protocol"]),
            (Container, "env") => keyed(Unknown, "name", BY_NAME),
            (Container, "volumeMounts") => keyed(Unknown, "mountPath", &["mountPath"]),
            (Container, "volumeDevices") => keyed(Unknown, "devicePath", &["devicePath"]),
            (Container, "resources") => present(Unknown),
            (PodStatus, "conditions") => keyed(Unknown, "type", BY_TYPE),
            (PodStatus, "podIPs" | "hostIPs") => keyed(Unknown, "ip", BY_IP),

            (Workload, "spec") => present(WorkloadSpec),
            (Workload, "status") => present(ConditionsStatus),
            (WorkloadSpec, "template") => present(PodTemplateSpec),
            // metav1.LabelSelector is `+structType=atomic`; RC's map selector is `+mapType=atomic`.
            (WorkloadSpec, "selector") => atomic(),
            (WorkloadSpec, "strategy" | "updateStrategy") => present(Unknown),
            (ConditionsStatus, "conditions") => keyed(Unknown, "type", BY_TYPE),
            (CronJob, "spec") => present(CronJobSpec),
            (CronJob, "status") => present(Unknown),
            (CronJobSpec, "jobTemplate") => present(JobTemplateSpec),
            (JobTemplateSpec, "metadata") => present(ObjectMeta),
            (JobTemplateSpec, "spec") => present(WorkloadSpec),

            (Node, "spec") => present(NodeSpec),
            (Node, "status") => present(NodeStatus),
            (NodeSpec, "podCIDRs") => set(),
            (NodeStatus, "conditions" | "addresses") => keyed(Unknown, "type", BY_TYPE),
            (NodeStatus, "daemonEndpoints" | "nodeInfo") => present(Unknown),
            (Namespace, "spec") => present(Unknown),
            (Namespace, "status") => present(ConditionsStatus),
            (ServiceAccount, "secrets") => keyed(Unknown, "name", BY_NAME),

            _ => plain(Unknown),
        }
    }
}

/// The value apply assumes for a list-map key the item leaves out (the schema default), so
/// `{"port":80}` and `{"port":80,"protocol":"TCP"}` are the same item.
pub fn key_default(key: &str) -> Option<serde_json::Value> {
    (key == "protocol").then(|| serde_json::Value::String("TCP".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(group: &str, kind: &str, path: &[&str]) -> Field {
        let mut field = present(root(group, kind));
        for name in path {
            field = field.ty.field(name);
        }
        field
    }

    #[test]
    fn tags_follow_upstream() {
        let cases: &[(&str, &str, &[&str], ListKind)] = &[
            (
                "",
                "Service",
                &["spec", "ports"],
                ListKind::Map {
                    smp_key: "port",
                    ssa_keys: &["port", "protocol"],
                },
            ),
            ("", "Service", &["spec", "externalIPs"], ListKind::Atomic),
            (
                "",
                "Service",
                &["spec", "loadBalancerSourceRanges"],
                ListKind::Atomic,
            ),
            (
                "",
                "Service",
                &["status", "loadBalancer", "ingress"],
                ListKind::Atomic,
            ),
            (
                "",
                "Service",
                &["status", "conditions"],
                ListKind::Map {
                    smp_key: "type",
                    ssa_keys: BY_TYPE,
                },
            ),
            ("", "Service", &["metadata", "finalizers"], ListKind::Set),
            (
                "",
                "Service",
                &["metadata", "ownerReferences"],
                ListKind::Map {
                    smp_key: "uid",
                    ssa_keys: &["uid"],
                },
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "containers"],
                ListKind::Map {
                    smp_key: "name",
                    ssa_keys: BY_NAME,
                },
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "containers", "ports"],
                ListKind::Map {
                    smp_key: "containerPort",
                    ssa_keys: &["containerPort", "protocol"],
                },
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "containers", "env"],
                ListKind::Map {
                    smp_key: "name",
                    ssa_keys: BY_NAME,
                },
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "containers", "volumeMounts"],
                ListKind::Map {
                    smp_key: "mountPath",
                    ssa_keys: &["mountPath"],
                },
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "tolerations"],
                ListKind::Atomic,
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "containers", "args"],
                ListKind::Atomic,
            ),
            (
                "",
                "Pod",
                &["spec", "volumes"],
                ListKind::Map {
                    smp_key: "name",
                    ssa_keys: BY_NAME,
                },
            ),
            (
                "",
                "Pod",
                &["status", "conditions"],
                ListKind::Map {
                    smp_key: "type",
                    ssa_keys: BY_TYPE,
                },
            ),
            ("", "Node", &["spec", "taints"], ListKind::Atomic),
            (
                "",
                "Node",
                &["status", "addresses"],
                ListKind::Map {
                    smp_key: "type",
                    ssa_keys: BY_TYPE,
                },
            ),
            (
                "discovery.k8s.io",
                "EndpointSlice",
                &["endpoints"],
                ListKind::Atomic,
            ),
            (
                "example.com",
                "Widget",
                &["spec", "items"],
                ListKind::Atomic,
            ),
            (
                "example.com",
                "Widget",
                &["metadata", "finalizers"],
                ListKind::Set,
            ),
        ];
        for (group, kind, path, want) in cases {
            assert_eq!(walk(group, kind, path).list, *want, "{kind} {path:?}");
        }
        assert!(walk("", "Service", &["spec", "selector"]).atomic);
        assert!(walk("apps", "Deployment", &["spec", "selector"]).atomic);
        assert!(!walk("", "ConfigMap", &["data"]).atomic);
    }

    #[test]
    fn always_present_structs() {
        assert!(walk("", "Service", &["spec"]).always_present);
        assert!(walk("", "Service", &["status", "loadBalancer"]).always_present);
        assert!(walk("apps", "Deployment", &["spec", "template", "metadata"]).always_present);
        assert!(!walk("", "Service", &["metadata", "labels"]).always_present);
        assert!(!walk("example.com", "Widget", &["spec"]).always_present);
        assert!(walk("coordination.k8s.io", "Lease", &["spec"]).always_present);
    }
}
