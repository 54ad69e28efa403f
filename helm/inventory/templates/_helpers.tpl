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
