# Sourced by the scripts: the Pulumi toolchain and the lab-only state backend of this checkout.
# (The same values for TypeScript callers live in lab/toolchain.ts.)
BPFNET_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BPFNET_REPO
export PATH="$BPFNET_REPO/.tools/bin:$PATH"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$BPFNET_REPO/.pulumi-state}"
# The file backend's secrets passphrase. Without one of your own, the lab's PUBLIC passphrase is
# used: fine for the lab, whose keys are throwaway, and refused (below) for any other stack.
BPFNET_LAB_PASSPHRASE="bpfnet-lab-only"
if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE="$BPFNET_LAB_PASSPHRASE"
  echo "bpfnet: WARNING: using the PUBLIC lab-only Pulumi passphrase \"$BPFNET_LAB_PASSPHRASE\": stack secrets are readable by anyone." >&2
  echo "bpfnet: fine for lab stacks; refused for a stack whose inventory is not a lab's. For real stacks: export PULUMI_CONFIG_PASSPHRASE first." >&2
fi
# While the public passphrase is in use, every `pulumi` run from this shell first checks the
# stack's inventory carries the lab marker (scripts/passphrase-guard.js).
pulumi() {
  if [ "${PULUMI_CONFIG_PASSPHRASE:-}" = "$BPFNET_LAB_PASSPHRASE" ]; then
    node "$BPFNET_REPO/scripts/passphrase-guard.js" "$@" || return 1
  fi
  command pulumi "$@"
}
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_HOME="${PULUMI_HOME:-$BPFNET_REPO/.tools/pulumi-home}"
mkdir -p "${PULUMI_BACKEND_URL#file://}" "$PULUMI_HOME"
