{{/* Object names are "<release>-<component>"; a release named "upid" gives upid-exporter. */}}
{{- define "upid.fullname" -}}
{{- if contains "upid" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-upid" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "upid.name" -}}
{{- printf "%s-%s" (include "upid.fullname" .root) .component -}}
{{- end -}}

{{- define "upid.labels" -}}
app.kubernetes.io/name: upid
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: upid
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels never change across upgrades: a Deployment's selector is immutable. */}}
{{- define "upid.selectorLabels" -}}
app.kubernetes.io/name: upid
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "upid.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The webhook runs in its own Deployment unless the sidecar suite puts it in the exporter's pod. */}}
{{- define "upid.webhookStandalone" -}}
{{- if and .Values.webhook.enabled (not .Values.sidecarSuite.enabled) }}true{{ end -}}
{{- end -}}

{{- define "upid.webhookSidecar" -}}
{{- if and .Values.webhook.enabled .Values.sidecarSuite.enabled .Values.exporter.enabled }}true{{ end -}}
{{- end -}}

{{- define "upid.webhookTLSSecret" -}}
{{ include "upid.fullname" . }}-webhook-tls
{{- end -}}

{{- define "upid.webhookServiceDNS" -}}
{{ include "upid.fullname" . }}-webhook.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* Usernames of UPID's service accounts: their own requests are never sent to the webhook. */}}
{{- define "upid.serviceAccountUsers" -}}
{{- $root := . -}}
{{- $out := list -}}
{{- range $c := list "exporter" "webhook" "scaler" -}}
{{- $out = append $out (printf "system:serviceaccount:%s:%s-%s" $root.Release.Namespace (include "upid.fullname" $root) $c) -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{/* The volume source of the exporter's checkpoint: its claim with persistence, else stateVolume; empty: none. */}}
{{- define "upid.exporterStateVolume" -}}
{{- $p := .Values.exporter.persistence -}}
{{- if $p.enabled -}}
persistentVolumeClaim:
  claimName: {{ $p.existingClaim | default (printf "%s-exporter-state" (include "upid.fullname" .)) }}
{{- else if .Values.exporter.stateVolume -}}
{{ toYaml .Values.exporter.stateVolume }}
{{- end -}}
{{- end -}}

{{- define "upid.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "upid.securityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/* Volumes and mounts for Prometheus credentials, shared by exporter pods. */}}
{{- define "upid.prometheusVolumes" -}}
{{- $a := .Values.prometheus.auth -}}
{{- if $a.bearerTokenSecret.name }}
- name: prometheus-token
  secret:
    secretName: {{ $a.bearerTokenSecret.name }}
    items: [{key: {{ $a.bearerTokenSecret.key }}, path: token}]
{{- end }}
{{- if $a.basicAuth.passwordSecret.name }}
- name: prometheus-password
  secret:
    secretName: {{ $a.basicAuth.passwordSecret.name }}
    items: [{key: {{ $a.basicAuth.passwordSecret.key }}, path: password}]
{{- end }}
{{- if $a.caConfigMap.name }}
- name: prometheus-ca
  configMap:
    name: {{ $a.caConfigMap.name }}
    items: [{key: {{ $a.caConfigMap.key }}, path: ca.crt}]
{{- end }}
{{- if or .Values.pricing.inline .Values.pricing.existingConfigMap.name }}
- name: pricing
  configMap:
    name: {{ .Values.pricing.existingConfigMap.name | default (printf "%s-pricing" (include "upid.fullname" .)) }}
    items: [{key: {{ if .Values.pricing.existingConfigMap.name }}{{ .Values.pricing.existingConfigMap.key }}{{ else }}pricing.yaml{{ end }}, path: pricing.yaml}]
{{- end }}
{{- end -}}

{{- define "upid.prometheusMounts" -}}
{{- $a := .Values.prometheus.auth -}}
{{- if $a.bearerTokenSecret.name }}
- {name: prometheus-token, mountPath: /etc/upid/prometheus/token, readOnly: true}
{{- end }}
{{- if $a.basicAuth.passwordSecret.name }}
- {name: prometheus-password, mountPath: /etc/upid/prometheus/password, readOnly: true}
{{- end }}
{{- if $a.caConfigMap.name }}
- {name: prometheus-ca, mountPath: /etc/upid/prometheus/ca, readOnly: true}
{{- end }}
{{- if or .Values.pricing.inline .Values.pricing.existingConfigMap.name }}
- {name: pricing, mountPath: /etc/upid/pricing, readOnly: true}
{{- end }}
{{- end -}}

{{- define "upid.podEnv" -}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
{{- end -}}

{{/* The webhook container, in its own Deployment or as the exporter's sidecar. */}}
{{- define "upid.webhookContainer" -}}
- name: webhook
  image: {{ include "upid.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [webhook, --config=/etc/upid/config/webhook.yaml]
  env:
    {{- include "upid.podEnv" . | nindent 4 }}
  ports:
    - {name: https-webhook, containerPort: 9443, protocol: TCP}
    - {name: http-metrics-wh, containerPort: 9848, protocol: TCP}
  readinessProbe:
    httpGet: {path: /readyz, port: http-metrics-wh}
    periodSeconds: 5
  livenessProbe:
    httpGet: {path: /healthz, port: http-metrics-wh}
    periodSeconds: 10
    failureThreshold: 6
  lifecycle:
    # Keeps serving while the endpoint removal reaches every API server, so that a rolling
    # upgrade drops no admission request.
    preStop:
      sleep: {seconds: 5}
  resources:
    {{- toYaml .Values.webhook.resources | nindent 4 }}
  securityContext:
    {{- include "upid.securityContext" . | nindent 4 }}
  volumeMounts:
    - {name: config, mountPath: /etc/upid/config, readOnly: true}
    {{- if eq .Values.webhook.tls.mode "cert-manager" }}
    - {name: webhook-certs, mountPath: /var/run/upid/webhook-certs, readOnly: true}
    {{- else }}
    - {name: webhook-certs, mountPath: /var/run/upid/webhook-certs}
    {{- end }}
{{- end -}}

{{- define "upid.webhookVolume" -}}
{{- if eq .Values.webhook.tls.mode "cert-manager" -}}
- name: webhook-certs
  secret:
    secretName: {{ include "upid.webhookTLSSecret" . }}
{{- else -}}
# Self-managed TLS writes the certificate from its Secret here; the root filesystem is read-only.
- name: webhook-certs
  emptyDir: {sizeLimit: 1Mi}
{{- end }}
{{- end -}}

{{/* Replicas on different nodes where possible; a user-given affinity replaces this. */}}
{{- define "upid.spreadAffinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "upid.selectorLabels" . | nindent 12 }}
{{- end -}}
{{- end -}}
