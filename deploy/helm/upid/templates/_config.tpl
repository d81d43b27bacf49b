{{/* The components' config files, one per component: each is checked strictly by the component
that reads it, and each Deployment's checksum covers only the files its pods read. */}}

{{- define "upid.config.log" -}}
{{- dict "level" .Values.logging.level "format" .Values.logging.format | toJson -}}
{{- end -}}

{{- define "upid.config.exporter" -}}
{{- $a := .Values.prometheus.auth -}}
{{- $httpClient := dict -}}
{{- if $a.bearerTokenSecret.name -}}
{{- $_ := set $httpClient "authorization" (dict "type" "Bearer" "credentials_file" "/etc/upid/prometheus/token/token") -}}
{{- end -}}
{{- if $a.basicAuth.username -}}
{{- $ba := dict "username" $a.basicAuth.username -}}
{{- if $a.basicAuth.passwordSecret.name }}{{ $_ := set $ba "password_file" "/etc/upid/prometheus/password/password" }}{{ end -}}
{{- $_ := set $httpClient "basic_auth" $ba -}}
{{- end -}}
{{- $tls := dict -}}
{{- if $a.caConfigMap.name }}{{ $_ := set $tls "ca_file" "/etc/upid/prometheus/ca/ca.crt" }}{{ end -}}
{{- if $a.insecureSkipVerify }}{{ $_ := set $tls "insecure_skip_verify" true }}{{ end -}}
{{- if $tls }}{{ $_ := set $httpClient "tls_config" $tls }}{{ end -}}
{{- $prom := dict "url" .Values.prometheus.url "timeout" .Values.prometheus.timeout -}}
{{- with .Values.prometheus.selector }}{{ $_ := set $prom "selector" . }}{{ end -}}
{{- if $httpClient }}{{ $_ := set $prom "http_client" $httpClient }}{{ end -}}
{{- $exp := dict "interval" .Values.exporter.interval "window" .Values.exporter.window "cluster" .Values.cluster -}}
{{- with .Values.exporter.namespaceLabels }}{{ $_ := set $exp "namespace_labels" . }}{{ end -}}
{{- if or .Values.pricing.inline .Values.pricing.existingConfigMap.name }}{{ $_ := set $exp "pricing_file" "/etc/upid/pricing/pricing.yaml" }}{{ end -}}
{{- if include "upid.exporterStateVolume" . }}{{ $_ := set $exp "recommender" (dict "state_file" "/var/lib/upid/recommender.state") }}{{ end -}}
{{- $exp = mergeOverwrite $exp (deepCopy .Values.exporter.config) -}}
{{- dict "log" (include "upid.config.log" . | fromJson) "prometheus" $prom "exporter" $exp | toYaml -}}
{{- end -}}

{{- define "upid.config.webhook" -}}
{{- $fullname := include "upid.fullname" . -}}
{{- $wtls := dict "mode" "files" -}}
{{- if ne .Values.webhook.tls.mode "cert-manager" -}}
{{- $wtls = dict "mode" "self_managed" "secret_name" (include "upid.webhookTLSSecret" .) "configuration_name" (printf "%s-webhook" $fullname) "dns_names" (list (printf "%s-webhook" $fullname) (printf "%s-webhook.%s" $fullname .Release.Namespace) (include "upid.webhookServiceDNS" .)) -}}
{{- end -}}
{{- $recURL := printf "http://%s-exporter.%s.svc:9847" $fullname .Release.Namespace -}}
{{- if .Values.sidecarSuite.enabled }}{{ $recURL = "http://localhost:9847" }}{{ end -}}
{{- $wh := dict "mode" .Values.webhook.mode "recommendations_url" $recURL "port" 9443 "cert_dir" "/var/run/upid/webhook-certs" "tls" $wtls -}}
{{- $wh = mergeOverwrite $wh (deepCopy .Values.webhook.config) -}}
{{- dict "log" (include "upid.config.log" . | fromJson) "webhook" $wh | toYaml -}}
{{- end -}}

{{- define "upid.config.scaler" -}}
{{- $p := .Values.scaler.policy -}}
{{- $sc := dict "bearer_token_file" "/etc/upid/scaler-token/token" "scope" $p.scope "dry_run" $p.dryRun "grace_period" $p.gracePeriod "max_actions" $p.maxActions "action_interval" $p.actionInterval "wake_windows" $p.wakeWindows "sleep_without_wake_path" $p.sleepWithoutWakePath "protected_namespaces" $p.protectedNamespaces "leader_election" (dict "enabled" true "name" (printf "%s-scaler" (include "upid.fullname" .))) -}}
{{- with .Values.cluster }}{{ $_ := set $sc "cluster" . }}{{ end -}}
{{- $sc = mergeOverwrite $sc (deepCopy .Values.scaler.config) -}}
{{- dict "log" (include "upid.config.log" . | fromJson) "scaler" $sc | toYaml -}}
{{- end -}}
