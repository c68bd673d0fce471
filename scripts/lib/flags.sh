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

# Prints, NUL-separated, the arguments without the named flags (either form).
# Usage: without_flags name1 name2 -- "$@" | xargs -0 ... or mapfile -d ''
without_flags() {
  local names=()
  while [ "$1" != "--" ]; do names+=("$1"); shift; done
  shift
  local skip_next=0 name dropped
  for arg in "$@"; do
    if [ "$skip_next" = 1 ]; then skip_next=0; continue; fi
    dropped=0
    for name in "${names[@]}"; do
      case "$arg" in
        "--$name="*) dropped=1 ;;
        "--$name") dropped=1; skip_next=1 ;;
      esac
    done
    [ "$dropped" = 1 ] || printf '%s\0' "$arg"
  done
}
