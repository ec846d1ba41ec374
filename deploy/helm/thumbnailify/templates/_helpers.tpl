{{/* The chart's name. */}}
{{- define "thumbnailify.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's resources are named <release>-<chart>, or <release> when it holds the chart's name. */}}
{{- define "thumbnailify.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "thumbnailify.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "thumbnailify.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The selector of one component (gateway or worker): pass (list $ "gateway"). */}}
{{- define "thumbnailify.selector" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "thumbnailify.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The image. */}}
{{- define "thumbnailify.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret holding the secrets: the chart's own, or the one named. */}}
{{- define "thumbnailify.secretName" -}}
{{- if .Values.secrets.create -}}
{{ include "thumbnailify.fullname" . }}
{{- else -}}
{{ required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}
{{- end -}}
{{- end -}}

{{/* Where the secrets are mounted. */}}
{{- define "thumbnailify.secretDir" -}}/etc/thumbnailify/secrets{{- end -}}

{{/* The service's configuration file: the chart's settings, then the values' `config` over them. */}}
{{- define "thumbnailify.config" -}}
{{- $dir := include "thumbnailify.secretDir" . -}}
{{- $chart := dict
  "queue" (dict "url_file" (printf "%s/queue-url" $dir) "prefix" .Values.queue.prefix)
  "store" (dict "url_file" (printf "%s/store-url" $dir))
  "media" (dict "s3" (dict
    "access_key_id_file" (printf "%s/s3-access-key-id" $dir)
    "secret_access_key_file" (printf "%s/s3-secret-access-key" $dir)))
  "server" (dict "drain_secs" .Values.gateway.drainSecs "shutdown_grace_secs" (sub .Values.gateway.terminationGracePeriodSeconds 5))
-}}
{{- if or .Values.secrets.apiKeys (and (not .Values.secrets.create) .Values.secrets.existingSecretHas.apiKeys) -}}
{{- $_ := set $chart "auth" (dict "api_keys_file" (printf "%s/api-keys" $dir)) -}}
{{- end -}}
{{- if or .Values.secrets.callbackSecret (and (not .Values.secrets.create) .Values.secrets.existingSecretHas.callbackSecret) -}}
{{- $_ := set $chart "callbacks" (dict "secret_file" (printf "%s/callback-secret" $dir)) -}}
{{- end -}}
{{- if or .Values.secrets.smtpUrl (and (not .Values.secrets.create) .Values.secrets.existingSecretHas.smtpUrl) -}}
{{- $_ := set $chart "email" (dict "smtp_url_file" (printf "%s/smtp-url" $dir)) -}}
{{- end -}}
{{- mustMergeOverwrite $chart (deepCopy .Values.config) | toYaml -}}
{{- end -}}

{{/* The pod-level security context both components run with. */}}
{{- define "thumbnailify.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security context: read-only root, no privilege, no capabilities. */}}
{{- define "thumbnailify.containerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Volumes both components mount: the configuration, the secrets, and a scratch data directory. */}}
{{- define "thumbnailify.volumes" -}}
- name: config
  configMap:
    name: {{ include "thumbnailify.fullname" . }}
- name: secrets
  secret:
    secretName: {{ include "thumbnailify.secretName" . }}
    defaultMode: 0440
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "thumbnailify.volumeMounts" -}}
- name: config
  mountPath: /etc/thumbnailify/config.yaml
  subPath: config.yaml
  readOnly: true
- name: secrets
  mountPath: {{ include "thumbnailify.secretDir" . }}
  readOnly: true
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}
