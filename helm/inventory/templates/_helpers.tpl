{{/*
Chart name, truncated to the 63 characters a label or DNS name allows.
*/}}
{{- define "inventory.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-wide prefix of object names: the release name alone when it already contains the
chart name (release "inventory" -> "inventory"), else "<release>-<chart>".
*/}}
{{- define "inventory.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "inventory.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The helpers below take one service: (dict "root" $ "name" <services key> "svc" <its values>).
*/}}

{{/* Name of one service's objects: "<fullname>-<key>", e.g. inventory-stock. */}}
{{- define "inventory.serviceFullname" -}}
{{- printf "%s-%s" (include "inventory.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inventory.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inventory.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "inventory.labels" -}}
helm.sh/chart: {{ include "inventory.chart" .root }}
{{ include "inventory.selectorLabels" . }}
app.kubernetes.io/version: {{ include "inventory.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/part-of: inventory
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "inventory.imageTag" -}}
{{- .svc.image.tag | default .root.Chart.AppVersion | toString }}
{{- end }}

{{- define "inventory.image" -}}
{{- $repository := required (printf "services.%s.image.repository is required" .name) .svc.image.repository }}
{{- printf "%s:%s" $repository (include "inventory.imageTag" .) }}
{{- end }}

{{/* The port of one service, as an integer; fails when it is missing. */}}
{{- define "inventory.port" -}}
{{- int (required (printf "services.%s.port is required" .name) .svc.port) }}
{{- end }}

{{/*
Whether the HorizontalPodAutoscaler owns the replica count ("true" or ""), and the lowest
replica count the service runs with.
*/}}
{{- define "inventory.autoscaled" -}}
{{- if dig "autoscaling" "enabled" false .svc }}true{{ end }}
{{- end }}

{{- define "inventory.minReplicas" -}}
{{- if include "inventory.autoscaled" . }}
{{- int (dig "autoscaling" "minReplicas" 1 .svc) }}
{{- else }}
{{- int (required (printf "services.%s.replicas is required" .name) .svc.replicas) }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the release's pods run as. */}}
{{- define "inventory.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inventory.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The scheme peers are called with: https under mutual TLS. */}}
{{- define "inventory.scheme" -}}
{{- ternary "https" "http" .Values.tls.enabled -}}
{{- end }}

{{/* The TLS Secret of one service. */}}
{{- define "inventory.tlsSecretName" -}}
{{- $tls := .svc.tls | default dict -}}
{{- $tls.secretName | default (printf "%s-tls" (include "inventory.serviceFullname" .)) -}}
{{- end }}

{{/* The environment, volume mount and volume that give one container the service's TLS files and token key. */}}
{{- define "inventory.securityEnv" -}}
{{- $root := .root -}}
{{- if $root.Values.tls.enabled }}
- name: TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" $root.Values.tls.mountPath | quote }}
- name: TLS_KEY_FILE
  value: {{ printf "%s/tls.key" $root.Values.tls.mountPath | quote }}
- name: TLS_CA_FILE
  value: {{ printf "%s/ca.crt" $root.Values.tls.mountPath | quote }}
- name: TLS_SERVER_NAME
  value: {{ include "inventory.serviceFullname" . | quote }}
- name: TLS_RELOAD_INTERVAL_MS
  value: {{ int $root.Values.tls.reloadIntervalMs | toString | quote }}
- name: AUTH_TRUST_DOMAIN
  value: {{ $root.Values.tls.trustDomain | quote }}
{{- end }}
{{- if $root.Values.auth.tokenSecret.name }}
- name: AUTH_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.auth.tokenSecret.name | quote }}
      key: {{ $root.Values.auth.tokenSecret.key | quote }}
{{- end }}
{{- end }}

{{- define "inventory.tlsVolumeMount" -}}
{{- if .root.Values.tls.enabled }}
- name: tls
  mountPath: {{ .root.Values.tls.mountPath | quote }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "inventory.tlsVolume" -}}
{{- if .root.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "inventory.tlsSecretName" . | quote }}
{{- end }}
{{- end }}
