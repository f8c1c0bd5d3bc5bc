{{/* Names ------------------------------------------------------------------ */}}
{{- define "orderflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orderflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>": include "orderflow.component" (list $ "functions") */}}
{{- define "orderflow.component" -}}
{{- printf "%s-%s" (include "orderflow.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orderflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orderflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: include "orderflow.labels" (list $ "functions") ------------------ */}}
{{- define "orderflow.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "orderflow.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "orderflow.labels" -}}
{{- $ := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "orderflow.selectorLabels" . }}
app.kubernetes.io/version: {{ default $.Chart.AppVersion $.Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/part-of: orderflow
{{- end -}}

{{/* Images: repository:tag, or repository:tag@digest with a digest ------------ */}}
{{- define "orderflow.imageRef" -}}
{{- $ref := printf "%s:%s" .repository (toString .tag) -}}
{{- if .digest }}{{ printf "%s@%s" $ref .digest }}{{ else }}{{ $ref }}{{ end -}}
{{- end -}}

{{- define "orderflow.image" -}}
{{- include "orderflow.imageRef" (merge (dict "tag" (default .Chart.AppVersion .Values.image.tag)) (omit .Values.image "tag")) -}}
{{- end -}}

{{/* Addresses and Secrets ---------------------------------------------------- */}}
{{- define "orderflow.temporalAddress" -}}
{{- if eq .Values.temporal.mode "dev" -}}
{{- printf "%s:%v" (include "orderflow.component" (list . "temporal")) .Values.temporal.dev.grpcPort -}}
{{- else -}}
{{- required "temporal.external.address is required when temporal.mode=external" .Values.temporal.external.address -}}
{{- end -}}
{{- end -}}

{{/* The same Temporal for a client outside the release's namespace (KEDA's operator runs
     in keda.namespace, where the short name does not resolve): the dev server's full
     name, or the external address as given. */}}
{{- define "orderflow.temporalAddressFromAnywhere" -}}
{{- if eq .Values.temporal.mode "dev" -}}
{{- printf "%s.%s.svc.cluster.local:%v" (include "orderflow.component" (list . "temporal")) .Release.Namespace .Values.temporal.dev.grpcPort -}}
{{- else -}}
{{- include "orderflow.temporalAddress" . -}}
{{- end -}}
{{- end -}}

{{/* The built-in PostgreSQL's password: a Secret the chart never creates (so that every
     render is the same, with or without a cluster: GitOps-safe). `make deploy` creates
     <fullname>-postgres-password once; postgres.builtin.existingSecret names another. */}}
{{- define "orderflow.postgresSecretName" -}}
{{- default (include "orderflow.component" (list . "postgres-password")) .Values.postgres.builtin.existingSecret -}}
{{- end -}}

{{- define "orderflow.postgresSecretKey" -}}
{{- .Values.postgres.builtin.secretKey -}}
{{- end -}}

{{/* An external database's DATABASE_URL: your Secret, or the one made from postgres.external.url. */}}
{{- define "orderflow.databaseSecretName" -}}
{{- if .Values.postgres.external.existingSecret -}}
{{- .Values.postgres.external.existingSecret -}}
{{- else -}}
{{- include "orderflow.component" (list . "database") -}}
{{- end -}}
{{- end -}}

{{/* How a process gets its database: the env entries of DATABASE_URL (and PGPASSWORD). */}}
{{- define "orderflow.databaseEnv" -}}
{{- if eq .Values.postgres.mode "builtin" -}}
{{- $pg := .Values.postgres.builtin -}}
{{- /* The password stays out of the URL: asyncpg reads libpq's PGPASSWORD when the URL has
       none. So the Secret holds nothing but the password, which lets it be one you manage
       (postgres.builtin.existingSecret), and the URL is plain configuration. */}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "orderflow.postgresSecretName" . }}
      key: {{ include "orderflow.postgresSecretKey" . }}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s@%s:5432/%s" $pg.username (include "orderflow.component" (list . "postgres")) $pg.database | quote }}
{{- else -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "orderflow.databaseSecretName" . }}
      key: {{ .Values.postgres.external.secretKey }}
{{- end -}}
{{- end -}}

{{- define "orderflow.apiTokenSecretName" -}}
{{- if .Values.apiToken.existingSecret -}}
{{- .Values.apiToken.existingSecret -}}
{{- else if .Values.apiToken.value -}}
{{- include "orderflow.component" (list . "api-token") -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.temporalTls" -}}
{{- and (eq .Values.temporal.mode "external") .Values.temporal.external.tls.enabled -}}
{{- end -}}

{{- define "orderflow.temporalApiKeySecret" -}}
{{- if eq .Values.temporal.mode "external" -}}{{ .Values.temporal.external.apiKey.existingSecret }}{{- end -}}
{{- end -}}

{{/* Pod and container hardening of the app's own containers: values, not fixed UIDs
     (podSecurityContext / containerSecurityContext; temporal.dev and postgres.builtin
     have their own). */}}
{{- define "orderflow.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "orderflow.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* A pod template's labels: the chart's (which win), then the component's podLabels,
     then the chart-wide ones, then `extra` (the chart's own role labels).
     include "orderflow.podLabels" (list $ "functions" $componentValues extraDict) */}}
{{- define "orderflow.podLabels" -}}
{{- $ := index . 0 -}}
{{- $v := index . 2 -}}
{{- $own := merge (include "orderflow.labels" (list $ (index . 1)) | fromYaml) (index . 3) -}}
{{- toYaml (merge $own (default (dict) $v.podLabels) $.Values.podLabels) -}}
{{- end -}}

{{/* The user's pod annotations: the component's, then the chart-wide ones. */}}
{{- define "orderflow.podAnnotations" -}}
{{- $ := index . 0 -}}
{{- $v := index . 1 -}}
{{- with merge (dict) (default (dict) $v.podAnnotations) $.Values.podAnnotations }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{/* Where a component's pods run: include "orderflow.scheduling" (list $ "functions" $v).
     A topologySpreadConstraint without a labelSelector selects the component's pods. */}}
{{- define "orderflow.scheduling" -}}
{{- $ := index . 0 -}}
{{- $v := index . 2 -}}
{{- $selector := include "orderflow.selectorLabels" (list $ (index . 1)) | fromYaml -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range . }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
  - {{- toYaml $constraint | nindent 4 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The keys that encrypt every Temporal payload (PAYLOAD_KEYS) are never made here: a key
     generated at render time would differ at every render and leave the histories written
     under the last one unreadable. `make deploy` creates <fullname>-payload-keys once;
     payloadEncryption.existingSecret names another (docs/kubernetes.md#payload-encryption-keys). */}}
{{- define "orderflow.payloadKeysSecretName" -}}
{{- default (include "orderflow.component" (list . "payload-keys")) .Values.payloadEncryption.existingSecret -}}
{{- end -}}

{{- define "orderflow.payloadKeysEnv" -}}
- name: PAYLOAD_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "orderflow.payloadKeysSecretName" . }}
      key: {{ .Values.payloadEncryption.secretKey }}
{{- end -}}

{{/* Secret env vars of the app containers (config lives in the ConfigMap) ---- */}}
{{- define "orderflow.secretEnv" -}}
{{ include "orderflow.databaseEnv" . }}
{{ include "orderflow.payloadKeysEnv" . }}
{{- with include "orderflow.apiTokenSecretName" . }}
- name: API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.apiToken.secretKey }}
{{- end }}
{{- with include "orderflow.temporalApiKeySecret" . }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.temporal.external.apiKey.secretKey }}
{{- end }}
{{- end -}}

{{/* The TLS files for an external Temporal, mounted read-only ---------------- */}}
{{- define "orderflow.temporalTlsVolumeMount" -}}
{{- if and (eq (include "orderflow.temporalTls" .) "true") .Values.temporal.external.tls.existingSecret }}
- name: temporal-tls
  mountPath: /etc/orderflow/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "orderflow.temporalTlsVolume" -}}
{{- if and (eq (include "orderflow.temporalTls" .) "true") .Values.temporal.external.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.external.tls.existingSecret }}
{{- end }}
{{- end -}}

{{/* Probes of the API and both workers: one implementation (orderflow/health.py) ------
Following Kubernetes' guidance (kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes,
.../tasks/configure-pod-container/configure-liveness-readiness-startup-probes):
- startup: the liveness endpoint with a budget of 60 s (30 x 2 s) for the worst start-up;
  it holds the other two off until the process answers at all.
- liveness: /healthz, the event loop answers. Never a dependency: restarting a container
  cannot fix PostgreSQL or Temporal, and with a shared dependency it would restart every
  pod at once.
- readiness: /readyz, this process takes work (API: started, not shutting down; worker:
  polling, not draining). Not the dependencies either: a not-ready pod leaves its
  Service's endpoints, so a 10 s database restart would take every API pod out together
  and clients would get refused connections instead of the API's 503 with Retry-After.
  Dependency state is GET /dependencies and the orderflow_dependency_up gauge instead.
  It answers from memory, so a short timeout; two misses in a row before a pod leaves.
*/}}
{{- define "orderflow.httpProbes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Metrics annotations: include "orderflow.scrapeAnnotations" (list $ port) */}}
{{- define "orderflow.scrapeAnnotations" -}}
{{- $ := index . 0 -}}
{{- if $.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: {{ $.Values.metrics.path | quote }}
{{- end }}
{{- end -}}

{{- define "orderflow.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ toJson (list .Values.apiToken .Values.postgres.external .Values.temporal.external) | sha256sum }}
{{- end -}}

{{/* Where the processes send their spans: otel.endpoint, else the collector's Service
     when otel.collector.enabled (OTLP port by protocol), else "" (tracing off). */}}
{{- define "orderflow.otelEndpoint" -}}
{{- $o := .Values.otel -}}
{{- if $o.endpoint -}}
{{- $o.endpoint -}}
{{- else if $o.collector.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:%s" $o.collector.service $o.collector.namespace (ternary "4317" "4318" (eq $o.protocol "grpc")) -}}
{{- end -}}
{{- end -}}

{{- /* The Host names the KEDA HTTP add-on routes to the API (scaleToZero.mode keda-http):
       the Ingress host, the proxy Service's in-cluster names (the interceptor strips the
       port from Host since 0.12), and any extra hosts. One "- name" line each. */}}
{{- define "orderflow.functionsHosts" -}}
{{- $f := .Values.functions }}
{{- $proxy := printf "%s-proxy" (include "orderflow.component" (list . "functions")) }}
{{- $hosts := list }}
{{- if $f.ingress.enabled }}
{{- $hosts = append $hosts $f.ingress.host }}
{{- end }}
{{- range list "" (printf ".%s" .Release.Namespace) (printf ".%s.svc" .Release.Namespace) (printf ".%s.svc.cluster.local" .Release.Namespace) }}
{{- $hosts = append $hosts (printf "%s%s" $proxy .) }}
{{- end }}
{{- range $h := concat $hosts $f.scaleToZero.kedaHttp.hosts | uniq }}
- {{ $h | quote }}
{{ end }}
{{- end -}}

{{- /* Where in-cluster clients (the helm test pod) reach the API: its Service, or with
       scaleToZero keda-http the interceptor's proxy name, so that a request wakes it. */}}
{{- define "orderflow.apiBaseUrl" -}}
{{- $fn := include "orderflow.component" (list . "functions") }}
{{- if eq .Values.functions.scaleToZero.mode "keda-http" -}}
{{- printf "http://%s-proxy:%v" $fn .Values.functions.scaleToZero.kedaHttp.interceptor.port -}}
{{- else -}}
{{- printf "http://%s:%v" $fn .Values.functions.service.port -}}
{{- end -}}
{{- end -}}
