# Helpers for scripts that pass --flag=value arguments through to a Python tool.
# Source it; do not run it.

# Prints the value of --NAME=VALUE (or "--NAME VALUE") among the remaining
# arguments, or nothing.
flag_value() {
  local name="$1"; shift
  while [ $# -gt 0 ]; do
    case "$1" in
      "--$name="*) printf '%s\n' "${1#--"$name"=}"; return 0 ;;
      "--$name") printf '%s\n' "${2:-}"; return 0 ;;
    esac
    shift
  done
}

# Exits with status 2 and the usage text unless every named flag is present.
# Usage: require_flags "USAGE TEXT" name1 name2 -- "$@"
require_flags() {
  local usage="$1"; shift
  local names=()
  while [ "$1" != "--" ]; do names+=("$1"); shift; done
  shift
  local missing=()
  for name in "${names[@]}"; do
    [ -n "$(flag_value "$name" "$@")" ] || missing+=("--$name")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    printf '%s: missing %s\n\n%s\n' "$(basename "$0")" "${missing[*]}" "$usage" >&2
    exit 2
  fi
}
