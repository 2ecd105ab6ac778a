{{/* Names ---------------------------------------------------------------- */}}

{{- define "accelscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "accelscope.fullname" -}}
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

{{- define "accelscope.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "accelscope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<fullname>-<component>", e.g. accelscope-exporter. Call with (dict "ctx" $ "component" "exporter"). */}}
{{- define "accelscope.componentName" -}}
{{- $suffix := printf "-%s" .component -}}
{{- printf "%s%s" (include "accelscope.fullname" .ctx | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{/*
The Prometheus job name of a component.  The generated rules select
job=~"(.+-)?accelscope-exporter" and job=~"(.+-)?accelscope-collector", so the
job is "<fullname>-<component>" when the fullname is or ends in "accelscope",
else "<fullname>-accelscope-<component>".  The ServiceMonitor / PodMonitor
takes it from the label accelscope.io/job (jobLabel).
*/}}
{{- define "accelscope.jobName" -}}
{{- $full := include "accelscope.fullname" .ctx -}}
{{- $suffix := printf "-%s" .component -}}
{{- if not (or (eq $full "accelscope") (hasSuffix "-accelscope" $full)) -}}
{{- $suffix = printf "-accelscope-%s" .component -}}
{{- end -}}
{{- printf "%s%s" ($full | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{/* Labels --------------------------------------------------------------- */}}

{{- define "accelscope.labels" -}}
helm.sh/chart: {{ include "accelscope.chart" . }}
app.kubernetes.io/name: {{ include "accelscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: accelscope
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* (dict "ctx" $ "component" "exporter") */}}
{{- define "accelscope.componentLabels" -}}
{{ include "accelscope.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "accelscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accelscope.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Service accounts ------------------------------------------------------ */}}

{{- define "accelscope.serviceAccountName" -}}
{{- $sa := (index .ctx.Values .component).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "accelscope.componentName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* Images ---------------------------------------------------------------- */}}

{{/* (dict "image" .Values.image "global" .Values.global "default" .Chart.AppVersion) */}}
{{- define "accelscope.imageRef" -}}
{{- $registry := default .image.registry .global.imageRegistry -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" $registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .default .image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "accelscope.image" -}}
{{- include "accelscope.imageRef" (dict "image" .Values.image "global" .Values.global "default" .Chart.AppVersion) -}}
{{- end -}}

{{- define "accelscope.proxyImage" -}}
{{- include "accelscope.imageRef" (dict "image" .Values.kubeRBACProxy.image "global" .Values.global "default" "latest") -}}
{{- end -}}

{{/* Web config, TLS and the proxy ----------------------------------------- */}}

{{/* "true" when a component (dict "ctx" $ "component" "exporter") sits behind kube-rbac-proxy */}}
{{- define "accelscope.proxied" -}}
{{- if (index .ctx.Values .component).kubeRBACProxy.enabled -}}true{{- end -}}
{{- end -}}

{{/* "true" when a component serves through the web config (TLS and/or basic auth) */}}
{{- define "accelscope.webConfigOn" -}}
{{- $w := .ctx.Values.webConfig -}}
{{- if and $w.enabled (not (include "accelscope.proxied" .)) (or $w.existingSecret $w.tls.enabled $w.basicAuth.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "accelscope.tlsOn" -}}
{{- if and (include "accelscope.webConfigOn" .) .ctx.Values.webConfig.tls.enabled -}}true{{- end -}}
{{- end -}}

{{- define "accelscope.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "accelscope.fullname" .) | trunc 63 | trimSuffix "-") .Values.webConfig.existingSecret -}}
{{- end -}}

{{- define "accelscope.proxyConfigName" -}}
{{- printf "%s-rbac-proxy" (include "accelscope.componentName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The web-config file the chart writes (exporter-toolkit format). */}}
{{- define "accelscope.webConfigFile" -}}
{{- $w := .Values.webConfig -}}
{{- $out := dict -}}
{{- if $w.tls.enabled -}}
{{- $tls := dict "cert_file" (printf "/etc/accelscope/tls/%s" $w.tls.certKey) "key_file" (printf "/etc/accelscope/tls/%s" $w.tls.keyKey) "min_version" $w.tls.minVersion -}}
{{- if ne $w.tls.clientAuthType "NoClientCert" -}}
{{- $_ := set $tls "client_auth_type" $w.tls.clientAuthType -}}
{{- $_ := set $tls "client_ca_file" (printf "/etc/accelscope/tls/%s" $w.tls.clientCAKey) -}}
{{- end -}}
{{- with $w.tls.clientAllowedSans }}{{ $_ := set $tls "client_allowed_sans" . }}{{ end -}}
{{- with $w.tls.maxVersion }}{{ $_ := set $tls "max_version" . }}{{ end -}}
{{- with $w.tls.cipherSuites }}{{ $_ := set $tls "cipher_suites" . }}{{ end -}}
{{- $_ := set $out "tls_server_config" $tls -}}
{{- end -}}
{{- if $w.basicAuth.enabled -}}
{{- $_ := set $out "basic_auth_users" $w.basicAuth.users -}}
{{- end -}}
{{- with $w.headers -}}
{{- $_ := set $out "http_server_config" (dict "headers" .) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Probes of a component: HTTP GET /healthz and /readyz; HTTPS when the component
serves TLS or sits behind kube-rbac-proxy (which passes these two paths through
unauthenticated); TCP when TLS requires client certificates, which the kubelet
does not have.  Basic auth never applies to /healthz and /readyz.
(dict "ctx" $ "component" "exporter" "path" "/healthz" "probe" .Values.exporter.livenessProbe)
*/}}
{{- define "accelscope.probe" -}}
{{- $w := .ctx.Values.webConfig -}}
{{- $port := (index .ctx.Values .component).port -}}
{{- if and (include "accelscope.tlsOn" .) (ne $w.tls.clientAuthType "NoClientCert") (ne $w.tls.clientAuthType "VerifyClientCertIfGiven") -}}
tcpSocket:
  port: {{ $port }}
{{- else -}}
httpGet:
  path: {{ .path }}
  port: {{ $port }}
  scheme: {{ if or (include "accelscope.tlsOn" .) (include "accelscope.proxied" .) }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
{{ toYaml .probe }}
{{- end -}}

{{/* The scheme Prometheus scrapes a component with. */}}
{{- define "accelscope.scrapeScheme" -}}
{{- $ep := index .ctx.Values.prometheus.monitor .component -}}
{{- if $ep.scheme -}}{{ $ep.scheme }}
{{- else if or (include "accelscope.tlsOn" .) (include "accelscope.proxied" .) -}}https
{{- else -}}http
{{- end -}}
{{- end -}}

{{/* The kube-rbac-proxy sidecar of a component. (dict "ctx" $ "component" "exporter") */}}
{{- define "accelscope.proxyContainer" -}}
{{- $p := .ctx.Values.kubeRBACProxy -}}
{{- $c := index .ctx.Values .component -}}
- name: kube-rbac-proxy
  image: {{ include "accelscope.proxyImage" .ctx }}
  imagePullPolicy: {{ $p.image.pullPolicy }}
  args:
    - --secure-listen-address=0.0.0.0:{{ $c.port }}
    - --upstream=http://127.0.0.1:{{ $c.kubeRBACProxy.upstreamPort }}/
    - --config-file=/etc/kube-rbac-proxy/config.yaml
    - --ignore-paths=/healthz,/readyz
    - --tls-min-version=VersionTLS12
    {{- if $p.tlsSecret }}
    - --tls-cert-file=/etc/kube-rbac-proxy/tls/tls.crt
    - --tls-private-key-file=/etc/kube-rbac-proxy/tls/tls.key
    {{- end }}
    {{- if $p.clientCASecret }}
    - --client-ca-file=/etc/kube-rbac-proxy/client-ca/ca.crt
    {{- end }}
    {{- range $p.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: metrics
      containerPort: {{ $c.port }}
      protocol: TCP
  resources:
    {{- toYaml $p.resources | nindent 4 }}
  securityContext:
    {{- toYaml $p.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: kube-rbac-proxy-tmp
      mountPath: /tmp
    - name: kube-rbac-proxy-config
      mountPath: /etc/kube-rbac-proxy/config.yaml
      subPath: config.yaml
      readOnly: true
    {{- if $p.tlsSecret }}
    - name: kube-rbac-proxy-tls
      mountPath: /etc/kube-rbac-proxy/tls
      readOnly: true
    {{- end }}
    {{- if $p.clientCASecret }}
    - name: kube-rbac-proxy-client-ca
      mountPath: /etc/kube-rbac-proxy/client-ca
      readOnly: true
    {{- end }}
    {{- if and (eq .component "exporter") (not $c.kubeAPI.enabled) }}
    - name: kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
    {{- end }}
{{- end -}}

{{/* Volumes of the proxy sidecar. */}}
{{- define "accelscope.proxyVolumes" -}}
{{- $p := .ctx.Values.kubeRBACProxy -}}
- name: kube-rbac-proxy-tmp
  emptyDir:
    sizeLimit: 16Mi
- name: kube-rbac-proxy-config
  configMap:
    name: {{ include "accelscope.proxyConfigName" . }}
    defaultMode: 0444
{{- if $p.tlsSecret }}
- name: kube-rbac-proxy-tls
  secret:
    secretName: {{ $p.tlsSecret }}
    defaultMode: 0444
{{- end }}
{{- if $p.clientCASecret }}
- name: kube-rbac-proxy-client-ca
  secret:
    secretName: {{ $p.clientCASecret }}
    defaultMode: 0444
{{- end }}
{{- end -}}

{{/* Web-config and TLS volumes and mounts of a component. */}}
{{- define "accelscope.webConfigVolumes" -}}
{{- if include "accelscope.webConfigOn" . -}}
- name: web-config
  secret:
    secretName: {{ include "accelscope.webConfigSecretName" .ctx }}
    defaultMode: 0444
{{- if .ctx.Values.webConfig.tls.enabled }}
- name: tls
  secret:
    secretName: {{ required "webConfig.tls.existingSecret is required when webConfig.tls.enabled" .ctx.Values.webConfig.tls.existingSecret }}
    defaultMode: 0444
{{- end }}
{{- end }}
{{- end -}}

{{- define "accelscope.webConfigMounts" -}}
{{- if include "accelscope.webConfigOn" . -}}
- name: web-config
  mountPath: /etc/accelscope/web
  readOnly: true
{{- if .ctx.Values.webConfig.tls.enabled }}
- name: tls
  mountPath: /etc/accelscope/tls
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "accelscope.webConfigArg" -}}
{{- if include "accelscope.webConfigOn" . -}}
- --web-config=/etc/accelscope/web/{{ if .ctx.Values.webConfig.existingSecret }}{{ .ctx.Values.webConfig.existingSecretKey }}{{ else }}web-config.yml{{ end }}
{{- end -}}
{{- end -}}

{{/* The address a component listens on. */}}
{{- define "accelscope.listen" -}}
{{- $c := index .ctx.Values .component -}}
{{- if include "accelscope.proxied" . -}}
127.0.0.1:{{ $c.kubeRBACProxy.upstreamPort }}
{{- else -}}
0.0.0.0:{{ $c.port }}
{{- end -}}
{{- end -}}

{{/* A projected service-account token (what automounting would give), for one container only. */}}
{{- define "accelscope.kubeAPIAccessVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                apiVersion: v1
                fieldPath: metadata.namespace
{{- end -}}

{{/* Exporter: does any enabled vendor (or the PodResources socket) need uid 0 / privileged? */}}
{{- define "accelscope.exporter.runAsRoot" -}}
{{- $e := .Values.exporter -}}
{{- $root := and $e.podResources.enabled $e.podResources.runAsRoot -}}
{{- range $name, $v := $e.vendors -}}
{{- if and $v.enabled $v.runAsRoot -}}{{- $root = true -}}{{- end -}}
{{- end -}}
{{- if $root -}}true{{- end -}}
{{- end -}}

{{- define "accelscope.exporter.privileged" -}}
{{- $priv := false -}}
{{- range $name, $v := .Values.exporter.vendors -}}
{{- if and $v.enabled $v.privileged -}}{{- $priv = true -}}{{- end -}}
{{- end -}}
{{- if $priv -}}true{{- end -}}
{{- end -}}

{{/* The collector's lease name. */}}
{{- define "accelscope.leaseName" -}}
{{- default (include "accelscope.componentName" (dict "ctx" . "component" "collector")) .Values.collector.leaderElection.leaseName -}}
{{- end -}}

{{/* Scrape limits, emitted only when non-zero. */}}
{{- define "accelscope.scrapeLimits" -}}
{{- $m := .Values.prometheus.monitor -}}
{{- $out := dict -}}
{{- range $k := list "sampleLimit" "targetLimit" "labelLimit" "labelNameLengthLimit" "labelValueLengthLimit" -}}
{{- if gt (int (index $m $k)) 0 -}}
{{- $_ := set $out $k (int (index $m $k)) -}}
{{- end -}}
{{- end -}}
{{- if $out -}}{{ toYaml $out }}{{- end -}}
{{- end -}}

{{/* The OTLP endpoint of a component. */}}
{{- define "accelscope.otlpEndpoint" -}}
{{- default .ctx.Values.otlp.endpoint (index .ctx.Values .component).otlp.endpoint -}}
{{- end -}}

{{/*
The exporter's --source list: exporter.sources, then nvml (vendors.nvidia), hami-vgpu (hami) and
each enabled vendor's backend, in a fixed order, without duplicates.
*/}}
{{- define "accelscope.exporter.sources" -}}
{{- $e := .Values.exporter -}}
{{- $out := list -}}
{{- range $e.sources }}{{ $out = append $out . }}{{ end -}}
{{- if $e.vendors.nvidia.enabled }}{{ $out = append $out "nvml" }}{{ end -}}
{{- if $e.hami.enabled }}{{ $out = append $out "hami-vgpu" }}{{ end -}}
{{- range $name := list "amd" "ascend" "hygon" "kunlunxin" "cambricon" "iluvatar" "metax" "moorethreads" -}}
{{- if (index $e.vendors $name).enabled }}{{ $out = append $out $name }}{{ end -}}
{{- end -}}
{{- $out = uniq $out -}}
{{- if not $out -}}
{{- fail "the exporter has no source: enable a vendor (exporter.vendors.*), exporter.hami, or list exporter.sources" -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
