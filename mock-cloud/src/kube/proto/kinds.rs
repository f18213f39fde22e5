//! Field tables of the kinds `kubectl create <generator>` and `kubectl auth can-i` send as
//! protobuf. Numbers and JSON names come from the Kubernetes `generated.proto` files (k8s.io/api
//! core/v1, apps/v1, batch/v1, rbac/v1, authorization/v1; apimachinery meta/v1). Only what
//! the generators write, plus the common pod template fields, is listed; anything else is
//! skipped by the decoder.

use super::schema::{
    F, Ty, boolf, i32f, i64f, inline, int_or_str, map, msg, msgs, ptr, quantity, s, strs,
};

const STR: &Ty = &Ty::Str;
const BYTES: &Ty = &Ty::Bytes;
const QUANTITY: &Ty = &Ty::Quantity;

const OWNER_REFERENCE: &[F] = &[
    s(5, "apiVersion"),
    s(1, "kind"),
    s(3, "name"),
    s(4, "uid"),
    ptr(boolf(6, "controller")),
    ptr(boolf(7, "blockOwnerDeletion")),
];

/// meta/v1 ObjectMeta; server-owned fields (uid, resourceVersion, timestamps, managedFields)
/// are ignored on create anyway, so they are not decoded.
pub const OBJECT_META: &[F] = &[
    s(1, "name"),
    s(2, "generateName"),
    s(3, "namespace"),
    map(11, "labels", STR),
    map(12, "annotations", STR),
    msgs(13, "ownerReferences", OWNER_REFERENCE),
    strs(14, "finalizers"),
];

const LABEL_SELECTOR: &[F] = &[
    map(1, "matchLabels", STR),
    msgs(
        2,
        "matchExpressions",
        &[s(1, "key"), s(2, "operator"), strs(3, "values")],
    ),
];

const LOCAL_OBJECT_REFERENCE: &[F] = &[s(1, "name")];

const KEY_SELECTOR: &[F] = &[
    inline(1, LOCAL_OBJECT_REFERENCE),
    s(2, "key"),
    ptr(boolf(3, "optional")),
];

const ENV_VAR_SOURCE: &[F] = &[
    msg(1, "fieldRef", &[s(1, "apiVersion"), s(2, "fieldPath")]),
    msg(
        2,
        "resourceFieldRef",
        &[
            s(1, "containerName"),
            s(2, "resource"),
            quantity(3, "divisor"),
        ],
    ),
    msg(3, "configMapKeyRef", KEY_SELECTOR),
    msg(4, "secretKeyRef", KEY_SELECTOR),
];

const ENV_FROM_REF: &[F] = &[inline(1, LOCAL_OBJECT_REFERENCE), ptr(boolf(2, "optional"))];

const RESOURCES: &[F] = &[
    map(1, "limits", QUANTITY),
    map(2, "requests", QUANTITY),
    msgs(3, "claims", &[s(1, "name"), s(2, "request")]),
];

const PROBE: &[F] = &[
    inline(
        1,
        &[
            msg(1, "exec", &[strs(1, "command")]),
            msg(
                2,
                "httpGet",
                &[
                    s(1, "path"),
                    int_or_str(2, "port"),
                    s(3, "host"),
                    s(4, "scheme"),
                    msgs(5, "httpHeaders", &[s(1, "name"), s(2, "value")]),
                ],
            ),
            msg(3, "tcpSocket", &[int_or_str(1, "port"), s(2, "host")]),
        ],
    ),
    i32f(2, "initialDelaySeconds"),
    i32f(3, "timeoutSeconds"),
    i32f(4, "periodSeconds"),
    i32f(5, "successThreshold"),
    i32f(6, "failureThreshold"),
];

const CONTAINER: &[F] = &[
    s(1, "name"),
    s(2, "image"),
    strs(3, "command"),
    strs(4, "args"),
    s(5, "workingDir"),
    msgs(
        6,
        "ports",
        &[
            s(1, "name"),
            i32f(2, "hostPort"),
            i32f(3, "containerPort"),
            s(4, "protocol"),
            s(5, "hostIP"),
        ],
    ),
    msgs(
        7,
        "env",
        &[
            s(1, "name"),
            s(2, "value"),
            msg(3, "valueFrom", ENV_VAR_SOURCE),
        ],
    ),
    msgs(
        19,
        "envFrom",
        &[
            s(1, "prefix"),
            msg(2, "configMapRef", ENV_FROM_REF),
            msg(3, "secretRef", ENV_FROM_REF),
        ],
    ),
    msg(8, "resources", RESOURCES),
    msgs(
        9,
        "volumeMounts",
        &[
            s(1, "name"),
            boolf(2, "readOnly"),
            s(3, "mountPath"),
            s(4, "subPath"),
        ],
    ),
    msg(10, "livenessProbe", PROBE),
    msg(11, "readinessProbe", PROBE),
    msg(22, "startupProbe", PROBE),
    s(13, "terminationMessagePath"),
    s(20, "terminationMessagePolicy"),
    s(14, "imagePullPolicy"),
    boolf(16, "stdin"),
    boolf(17, "stdinOnce"),
    boolf(18, "tty"),
];

const KEY_TO_PATH: &[F] = &[s(1, "key"), s(2, "path"), ptr(i32f(3, "mode"))];

const VOLUME: &[F] = &[
    s(1, "name"),
    inline(
        2,
        &[
            msg(1, "hostPath", &[s(1, "path"), s(2, "type")]),
            msg(2, "emptyDir", &[s(1, "medium"), quantity(2, "sizeLimit")]),
            msg(
                6,
                "secret",
                &[
                    s(1, "secretName"),
                    msgs(2, "items", KEY_TO_PATH),
                    ptr(i32f(3, "defaultMode")),
                    ptr(boolf(4, "optional")),
                ],
            ),
            msg(
                10,
                "persistentVolumeClaim",
                &[s(1, "claimName"), boolf(2, "readOnly")],
            ),
            msg(
                19,
                "configMap",
                &[
                    inline(1, LOCAL_OBJECT_REFERENCE),
                    msgs(2, "items", KEY_TO_PATH),
                    ptr(i32f(3, "defaultMode")),
                    ptr(boolf(4, "optional")),
                ],
            ),
        ],
    ),
];

const POD_SPEC: &[F] = &[
    msgs(1, "volumes", VOLUME),
    msgs(20, "initContainers", CONTAINER),
    msgs(2, "containers", CONTAINER),
    s(3, "restartPolicy"),
    ptr(i64f(4, "terminationGracePeriodSeconds")),
    ptr(i64f(5, "activeDeadlineSeconds")),
    s(6, "dnsPolicy"),
    map(7, "nodeSelector", STR),
    s(8, "serviceAccountName"),
    s(9, "serviceAccount"),
    ptr(boolf(21, "automountServiceAccountToken")),
    s(10, "nodeName"),
    boolf(11, "hostNetwork"),
    msgs(15, "imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    s(16, "hostname"),
    s(17, "subdomain"),
    s(19, "schedulerName"),
    msgs(
        22,
        "tolerations",
        &[
            s(1, "key"),
            s(2, "operator"),
            s(3, "value"),
            s(4, "effect"),
            ptr(i64f(5, "tolerationSeconds")),
        ],
    ),
    s(24, "priorityClassName"),
];

const POD_TEMPLATE: &[F] = &[msg(1, "metadata", OBJECT_META), msg(2, "spec", POD_SPEC)];

pub const NAMESPACE: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msg(2, "spec", &[strs(1, "finalizers")]),
    msg(3, "status", &[s(1, "phase")]),
];

pub const CONFIG_MAP: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    map(2, "data", STR),
    map(3, "binaryData", BYTES),
    ptr(boolf(4, "immutable")),
];

pub const SECRET: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    map(2, "data", BYTES),
    map(4, "stringData", STR),
    s(3, "type"),
    ptr(boolf(5, "immutable")),
];

pub const SERVICE_ACCOUNT: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msgs(
        2,
        "secrets",
        &[
            s(1, "kind"),
            s(2, "namespace"),
            s(3, "name"),
            s(5, "apiVersion"),
        ],
    ),
    msgs(3, "imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    ptr(boolf(4, "automountServiceAccountToken")),
];

pub const DEPLOYMENT: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msg(
        2,
        "spec",
        &[
            ptr(i32f(1, "replicas")),
            msg(2, "selector", LABEL_SELECTOR),
            msg(3, "template", POD_TEMPLATE),
            msg(
                4,
                "strategy",
                &[
                    s(1, "type"),
                    msg(
                        2,
                        "rollingUpdate",
                        &[int_or_str(1, "maxUnavailable"), int_or_str(2, "maxSurge")],
                    ),
                ],
            ),
            i32f(5, "minReadySeconds"),
            ptr(i32f(6, "revisionHistoryLimit")),
            boolf(7, "paused"),
            ptr(i32f(9, "progressDeadlineSeconds")),
        ],
    ),
    msg(3, "status", &[]),
];

const SERVICE_PORT: &[F] = &[
    s(1, "name"),
    s(2, "protocol"),
    s(6, "appProtocol"),
    i32f(3, "port"),
    int_or_str(4, "targetPort"),
    i32f(5, "nodePort"),
];

pub const SERVICE: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msg(
        2,
        "spec",
        &[
            msgs(1, "ports", SERVICE_PORT),
            map(2, "selector", STR),
            s(3, "clusterIP"),
            strs(18, "clusterIPs"),
            s(4, "type"),
            strs(5, "externalIPs"),
            s(7, "sessionAffinity"),
            s(8, "loadBalancerIP"),
            strs(9, "loadBalancerSourceRanges"),
            s(10, "externalName"),
            s(11, "externalTrafficPolicy"),
            i32f(12, "healthCheckNodePort"),
            boolf(13, "publishNotReadyAddresses"),
            msg(
                14,
                "sessionAffinityConfig",
                &[msg(1, "clientIP", &[ptr(i32f(1, "timeoutSeconds"))])],
            ),
            strs(19, "ipFamilies"),
            ptr(s(17, "ipFamilyPolicy")),
            ptr(boolf(20, "allocateLoadBalancerNodePorts")),
            ptr(s(21, "loadBalancerClass")),
            ptr(s(22, "internalTrafficPolicy")),
            ptr(s(23, "trafficDistribution")),
        ],
    ),
    msg(3, "status", &[]),
];

const JOB_SPEC: &[F] = &[
    ptr(i32f(1, "parallelism")),
    ptr(i32f(2, "completions")),
    ptr(i64f(3, "activeDeadlineSeconds")),
    ptr(i32f(7, "backoffLimit")),
    msg(4, "selector", LABEL_SELECTOR),
    ptr(boolf(5, "manualSelector")),
    msg(6, "template", POD_TEMPLATE),
    ptr(i32f(8, "ttlSecondsAfterFinished")),
    ptr(s(9, "completionMode")),
    ptr(boolf(10, "suspend")),
];

pub const JOB: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msg(2, "spec", JOB_SPEC),
    msg(3, "status", &[]),
];

pub const CRON_JOB: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msg(
        2,
        "spec",
        &[
            s(1, "schedule"),
            ptr(s(8, "timeZone")),
            ptr(i64f(2, "startingDeadlineSeconds")),
            s(3, "concurrencyPolicy"),
            ptr(boolf(4, "suspend")),
            msg(
                5,
                "jobTemplate",
                &[msg(1, "metadata", OBJECT_META), msg(2, "spec", JOB_SPEC)],
            ),
            ptr(i32f(6, "successfulJobsHistoryLimit")),
            ptr(i32f(7, "failedJobsHistoryLimit")),
        ],
    ),
    msg(3, "status", &[]),
];

const POLICY_RULE: &[F] = &[
    strs(1, "verbs"),
    strs(2, "apiGroups"),
    strs(3, "resources"),
    strs(4, "resourceNames"),
    strs(5, "nonResourceURLs"),
];

pub const ROLE: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msgs(2, "rules", POLICY_RULE),
];

pub const CLUSTER_ROLE: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msgs(2, "rules", POLICY_RULE),
    msg(
        3,
        "aggregationRule",
        &[msgs(1, "clusterRoleSelectors", LABEL_SELECTOR)],
    ),
];

pub const ROLE_BINDING: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msgs(
        2,
        "subjects",
        &[
            s(1, "kind"),
            s(2, "apiGroup"),
            s(3, "name"),
            s(4, "namespace"),
        ],
    ),
    msg(
        3,
        "roleRef",
        &[s(1, "apiGroup"), s(2, "kind"), s(3, "name")],
    ),
];

pub const SELF_SUBJECT_ACCESS_REVIEW: &[F] = &[
    msg(1, "metadata", OBJECT_META),
    msg(
        2,
        "spec",
        &[
            msg(
                1,
                "resourceAttributes",
                &[
                    s(1, "namespace"),
                    s(2, "verb"),
                    s(3, "group"),
                    s(4, "version"),
                    s(5, "resource"),
                    s(6, "subresource"),
                    s(7, "name"),
                    msg(8, "fieldSelector", &[s(1, "rawSelector")]),
                    msg(9, "labelSelector", &[s(1, "rawSelector")]),
                ],
            ),
            msg(2, "nonResourceAttributes", &[s(1, "path"), s(2, "verb")]),
        ],
    ),
    msg(3, "status", &[]),
];

/// `(apiVersion, kind) → table`.
pub const KINDS: &[(&str, &str, &[F])] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "Secret", SECRET),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
    ("v1", "Service", SERVICE),
    ("apps/v1", "Deployment", DEPLOYMENT),
    ("batch/v1", "Job", JOB),
    ("batch/v1", "CronJob", CRON_JOB),
    ("rbac.authorization.k8s.io/v1", "Role", ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", ROLE_BINDING),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        ROLE_BINDING,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        SELF_SUBJECT_ACCESS_REVIEW,
    ),
];
