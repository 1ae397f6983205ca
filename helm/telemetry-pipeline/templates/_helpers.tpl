{{/*
Names, labels and the pod template every pipeline component shares.
*/}}

{{- define "telemetry-pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name "<release>-<chart>", shortened to leave room for component suffixes and the
StatefulSet/ReplicaSet pod suffixes (pod names become MQTT client ids).
*/}}
{{- define "telemetry-pipeline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "telemetry-pipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "telemetry-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "telemetry-pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "telemetry-pipeline.labels" -}}
helm.sh/chart: {{ include "telemetry-pipeline.chart" . }}
{{ include "telemetry-pipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: telemetry-pipeline
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "telemetry-pipeline.componentLabels" -}}
{{ include "telemetry-pipeline.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "telemetry-pipeline.componentSelectorLabels" -}}
{{ include "telemetry-pipeline.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "telemetry-pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "telemetry-pipeline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "telemetry-pipeline.secretName" -}}
{{- default (printf "%s-secrets" (include "telemetry-pipeline.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "telemetry-pipeline.configMapName" -}}
{{- printf "%s-config" (include "telemetry-pipeline.fullname" .) }}
{{- end }}

{{/* image reference; call with (dict "root" $ "values" .Values.ingest) */}}
{{- define "telemetry-pipeline.image" -}}
{{- $img := merge (deepCopy (default dict .values.image)) .root.Values.image }}
{{- printf "%s:%s" $img.repository (toString (default .root.Chart.AppVersion $img.tag)) }}
{{- end }}

{{- define "telemetry-pipeline.imagePullPolicy" -}}
{{- $img := merge (deepCopy (default dict .values.image)) .root.Values.image }}
{{- $img.pullPolicy }}
{{- end }}

{{/*
One secret env var from the chart's Secret or the existing one.
Call with (dict "root" $ "env" "TELEMETRY_MQTT_PASSWORD" "key" "mqttPassword" "optional" false).
*/}}
{{- define "telemetry-pipeline.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "telemetry-pipeline.secretName" .root }}
      key: {{ index .root.Values.secrets.keys .key }}
      optional: {{ .optional }}
{{- end }}

{{/*
The pod template of a pipeline component.
Call with (dict "root" $ "component" "ingest" "values" .Values.ingest "secretEnv" (list ...)
               "env" (list ...) "volumes" (list ...) "volumeMounts" (list ...) "workingDir" "")
- secretEnv: list of (dict "env" NAME "key" KEY "optional" BOOL), the secrets this component uses
- env: extra component-specific EnvVar dicts
*/}}
{{- define "telemetry-pipeline.podTemplate" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $probes := mergeOverwrite (deepCopy $root.Values.probes) (default dict $v.probes) -}}
metadata:
  labels:
    {{- include "telemetry-pipeline.componentLabels" (dict "root" $root "component" .component) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- if $root.Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $v.healthPort | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "telemetry-pipeline.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- if $v.affinity }}
    {{- toYaml $v.affinity | nindent 4 }}
    {{- else }}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "telemetry-pipeline.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 16 }}
    {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "telemetry-pipeline.image" (dict "root" $root "values" $v) | quote }}
      imagePullPolicy: {{ include "telemetry-pipeline.imagePullPolicy" (dict "root" $root "values" $v) }}
      {{- with $v.command }}
      command:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .workingDir }}
      workingDir: {{ . }}
      {{- end }}
      ports:
        - name: health
          containerPort: {{ $v.healthPort }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "telemetry-pipeline.configMapName" $root }}
        {{- if and (not $root.Values.secrets.existingSecret) $root.Values.secrets.extra }}
        - secretRef:
            name: {{ include "telemetry-pipeline.secretName" $root }}-extra
        {{- end }}
        {{- with $v.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        - name: TELEMETRY_HEALTH_PORT
          value: {{ $v.healthPort | quote }}
        {{- with $v.healthPortEnv }}
        - name: {{ . }}
          value: {{ $v.healthPort | quote }}
        {{- end }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: HOME
          value: /tmp
        {{- range .secretEnv }}
        {{- include "telemetry-pipeline.secretEnv" (dict "root" $root "env" .env "key" .key "optional" .optional) | nindent 8 }}
        {{- end }}
        {{- if $root.Values.kafka.sasl.mechanism }}
        {{- include "telemetry-pipeline.secretEnv" (dict "root" $root "env" "TELEMETRY_KAFKA_SASL_PASSWORD" "key" "kafkaSaslPassword" "optional" false) | nindent 8 }}
        {{- end }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: health
        {{- toYaml $probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: health
        {{- toYaml $probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: health
        {{- toYaml $probes.readiness | nindent 8 }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- with .volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* Partitions of telemetry.raw: its own `partitions` in topics.list, else topics.partitions. */}}
{{- define "telemetry-pipeline.rawPartitions" -}}
{{- $n := .Values.topics.partitions -}}
{{- range .Values.topics.list }}
{{- if and (eq .name "telemetry.raw") .partitions }}
{{- $n = .partitions -}}
{{- end }}
{{- end }}
{{- $n -}}
{{- end }}

{{/*
Ports of a list of "host:port" addresses or URLs, as a JSON list of numbers (include returns
text). Call with (dict "addresses" (list ...) "default" 0): an address without a port gets
"default" (none when 0); http:// and https:// URLs without one get 80 and 443.
*/}}
{{- define "telemetry-pipeline.ports" -}}
{{- $ports := list -}}
{{- range .addresses }}
{{- $a := trim . -}}
{{- $fallback := $.default -}}
{{- if hasPrefix "https://" $a }}{{ $fallback = 443 }}{{ else if hasPrefix "http://" $a }}{{ $fallback = 80 }}{{ end -}}
{{- $hostPort := regexReplaceAll "/.*$" (regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" $a "") "" -}}
{{- $m := regexFind ":[0-9]+$" $hostPort -}}
{{- if $m }}
{{- $ports = append $ports (trimPrefix ":" $m | atoi) -}}
{{- else if $fallback }}
{{- $ports = append $ports (int $fallback) -}}
{{- end }}
{{- end }}
{{- $ports | uniq | toJson -}}
{{- end }}

{{/* "x2", or "autoscaled 2-6" when the component has an autoscaler; call with its values. */}}
{{- define "telemetry-pipeline.replicasNote" -}}
{{- if and .autoscaling .autoscaling.enabled -}}
autoscaled {{ .autoscaling.minReplicas }}-{{ .autoscaling.maxReplicas }}
{{- else -}}
x{{ .replicas }}
{{- end -}}
{{- end }}
