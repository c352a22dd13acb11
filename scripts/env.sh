# Sourced by the scripts: the Pulumi toolchain and the lab-only state backend of this checkout.
# (The same values for TypeScript callers live in lab/toolchain.ts.)
BPFNET_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BPFNET_REPO
export PATH="$BPFNET_REPO/.tools/bin:$PATH"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$BPFNET_REPO/.pulumi-state}"
# Lab-only passphrase for the file backend's secrets; set your own for real stacks.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-bpfnet-lab-only}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_HOME="${PULUMI_HOME:-$BPFNET_REPO/.tools/pulumi-home}"
mkdir -p "${PULUMI_BACKEND_URL#file://}" "$PULUMI_HOME"
