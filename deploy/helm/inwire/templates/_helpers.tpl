{{/* Names, labels and the pieces every Inwire pod shares. */}}

{{- define "inwire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-inwire, or the release name alone when it already says inwire. */}}
{{- define "inwire.fullname" -}}
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

{{- define "inwire.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inwire.labels" -}}
helm.sh/chart: {{ include "inwire.chart" . }}
app.kubernetes.io/name: {{ include "inwire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: inwire
{{- end }}

{{/* Selector of one component: pass (dict "root" $ "component" "core"). */}}
{{- define "inwire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inwire.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "inwire.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "inwire.secretName" -}}
{{- default (include "inwire.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Core's JWKS, where every service and the gateway verify access tokens. */}}
{{- define "inwire.jwksUrl" -}}
{{- printf "http://%s-core:%v/.well-known/jwks.json" (include "inwire.fullname" .) .Values.services.core.port }}
{{- end }}

{{/* Data of the chart's Secret (also of the migration hook's copy). */}}
{{- define "inwire.secretData" -}}
database-url: {{ required "database.url is required (postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB), or set existingSecret" .Values.database.url | b64enc | quote }}
core-secret-key: {{ required "core.secretKey is required (a Fernet key), or set existingSecret" .Values.core.secretKey | b64enc | quote }}
internal-secret: {{ required "internalSecret is required (random text), or set existingSecret" .Values.internalSecret | b64enc | quote }}
{{- with .Values.cache.url }}
cache-url: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.events.url }}
events-url: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.storage.url }}
storage-url: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.storage.accessKeyId }}
s3-access-key-id: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.storage.secretAccessKey }}
s3-secret-access-key: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/* A service's backend URLs and S3 credentials from the Secret: pass (dict "secret" NAME). */}}
{{- define "inwire.backendEnv" -}}
- name: INWIRE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: database-url
- name: INWIRE_INTERNAL_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: internal-secret
- name: INWIRE_CACHE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: cache-url
      optional: true
- name: INWIRE_EVENTS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: events-url
      optional: true
- name: INWIRE_STORAGE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: storage-url
      optional: true
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: s3-access-key-id
      optional: true
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: s3-secret-access-key
      optional: true
{{- end }}

{{/* The gateway's own variables: pass (dict "root" $ "secret" NAME). */}}
{{- define "inwire.gatewayEnv" -}}
- name: INWIRE_CACHE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: cache-url
      optional: true
- name: INWIRE_GATEWAY_UPSTREAMS
  value: {{ include "inwire.upstreams" .root | quote }}
- name: INWIRE_GATEWAY_CORS_ORIGINS
  value: {{ .root.Values.gateway.corsOrigins | toJson | quote }}
{{- end }}

{{/* Every enabled service's URL inside the cluster, by name, as JSON. */}}
{{- define "inwire.upstreams" -}}
{{- $fullname := include "inwire.fullname" . }}
{{- $upstreams := dict }}
{{- range $name, $spec := .Values.services }}
{{- if $spec.enabled }}
{{- $_ := set $upstreams $name (printf "http://%s-%s:%v" $fullname $name $spec.port) }}
{{- end }}
{{- end }}
{{- $upstreams | toJson }}
{{- end }}

{{/* Extra variables of one component: pass (dict "env" MAP "secretEnv" MAP "secret" NAME). */}}
{{- define "inwire.extraEnv" -}}
{{- range $name, $key := .secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.secret }}
      key: {{ $key }}
{{- end }}
{{- range $name, $value := .env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when the shared configuration changes. */}}
{{- define "inwire.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
One Inwire Deployment and its Service: pass (dict "root" $ "name" NAME "spec" VALUES
"envTemplate" TEMPLATE ["command" LIST]), TEMPLATE naming the variables it gets beyond the
ConfigMap; without a command the image's `inwire serve NAME` runs. Used for every registered
service and for the gateway.
*/}}
{{- define "inwire.component" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $spec := .spec }}
{{- $fullname := printf "%s-%s" (include "inwire.fullname" $root) $name }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "inwire.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $name }}
spec:
  replicas: {{ $spec.replicas }}
  selector:
    matchLabels:
      {{- include "inwire.selectorLabels" (dict "root" $root "component" $name) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "inwire.selectorLabels" (dict "root" $root "component" $name) | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "inwire.configChecksums" $root | nindent 8 }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $name }}
          image: {{ include "inwire.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          {{- with .command }}
          command: {{ toJson . }}
          args: ["--port", {{ $spec.port | quote }}]
          {{- else }}
          args: [{{ $name | quote }}, "--port", {{ $spec.port | quote }}]
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $spec.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "inwire.fullname" $root }}
          env:
            {{- include .envTemplate (dict "root" $root "secret" (include "inwire.secretName" $root)) | nindent 12 }}
            {{- with include "inwire.extraEnv" (dict "env" $spec.env "secretEnv" $spec.secretEnv "secret" (include "inwire.secretName" $root)) }}
            {{- . | trim | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /health/live
              port: http
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /health/live
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: {{ $spec.readinessPath }}
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml $spec.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /data
            - name: tmp
              mountPath: /tmp
      volumes:
        # INWIRE_HOME: only what a pod may lose (mail spool, the first admin's credentials);
        # everything that matters lives in the backends.
        - name: data
          emptyDir: {}
        - name: tmp
          emptyDir: {}
      {{- with $spec.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $spec.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $spec.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "inwire.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $name }}
  {{- with ($spec.service).annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ ($spec.service).type | default "ClusterIP" }}
  selector:
    {{- include "inwire.selectorLabels" (dict "root" $root "component" $name) | nindent 4 }}
  ports:
    - name: http
      port: {{ ($spec.service).port | default $spec.port }}
      targetPort: http
      protocol: TCP
{{- end }}
