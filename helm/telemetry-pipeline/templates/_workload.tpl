{{/*
A pipeline component as a Deployment or StatefulSet, with its headless Service and its PDB.
Call with (dict "root" $ "component" NAME "kind" "Deployment|StatefulSet" "values" V
               "secretEnv" LIST "env" LIST "volumes" LIST "volumeMounts" LIST
               "workingDir" PATH "volumeClaimTemplates" LIST)
*/}}
{{- define "telemetry-pipeline.workload" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $name := printf "%s-%s" (include "telemetry-pipeline.fullname" $root) .component -}}
{{- if not (has .kind (list "Deployment" "StatefulSet")) }}
{{- fail (printf "%s: kind must be Deployment or StatefulSet, not %q" .component .kind) }}
{{- end }}
apiVersion: apps/v1
kind: {{ .kind }}
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "telemetry-pipeline.componentLabels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  {{- /* With an autoscaler the replica count is the autoscaler's: rendering it would reset it on every upgrade. */}}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "telemetry-pipeline.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  {{- if eq .kind "StatefulSet" }}
  serviceName: {{ $name }}
  # Pods start and stop together: their names must be stable, their order does not matter.
  podManagementPolicy: Parallel
  updateStrategy:
    type: RollingUpdate
  {{- with .volumeClaimTemplates }}
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  volumeClaimTemplates:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  {{- end }}
  template:
    {{- include "telemetry-pipeline.podTemplate" . | nindent 4 }}
---
# Headless Service: stable DNS for StatefulSet pods and the scrape target of the ServiceMonitor.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "telemetry-pipeline.componentLabels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "telemetry-pipeline.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 4 }}
  ports:
    - name: health
      port: {{ $v.healthPort }}
      targetPort: health
      protocol: TCP
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "telemetry-pipeline.componentLabels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "telemetry-pipeline.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
{{- end }}
{{- end }}
