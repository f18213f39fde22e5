{{/* Chart name, truncated to the 63-character label limit. */}}
{{- define "frontdesk.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: the release name alone when it already contains the chart name. */}}
{{- define "frontdesk.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "frontdesk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "frontdesk.labels" -}}
helm.sh/chart: {{ include "frontdesk.chart" . }}
app.kubernetes.io/name: {{ include "frontdesk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (controller or speaker); call with (list . "controller"). */}}
{{- define "frontdesk.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "frontdesk.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "frontdesk.controller.fullname" -}}
{{- printf "%s-controller" (include "frontdesk.fullname" .) }}
{{- end }}

{{- define "frontdesk.speaker.fullname" -}}
{{- printf "%s-speaker" (include "frontdesk.fullname" .) }}
{{- end }}

{{- define "frontdesk.controller.serviceAccountName" -}}
{{- default (include "frontdesk.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- end }}

{{- define "frontdesk.speaker.serviceAccountName" -}}
{{- default (include "frontdesk.speaker.fullname" .) .Values.speaker.serviceAccount.name }}
{{- end }}

{{- define "frontdesk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The hardened container security context both components start from. */}}
{{- define "frontdesk.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The controller's config file: chart-managed keys, then `config` over them. */}}
{{- define "frontdesk.configFile" -}}
{{- $managed := dict
  "clusterName" .Values.clusterName
  "metricsAddr" (printf "0.0.0.0:%v" .Values.metrics.port)
  "leaderElection" (dict
    "enabled" .Values.controller.leaderElection.enabled
    "leaseName" (include "frontdesk.controller.fullname" .)
    "leaseNamespace" .Release.Namespace
    "leaseDurationSeconds" .Values.controller.leaderElection.leaseDurationSeconds
    "renewIntervalSeconds" .Values.controller.leaderElection.renewIntervalSeconds)
-}}
{{- mergeOverwrite $managed (deepCopy .Values.config) | toYaml }}
{{- end }}
