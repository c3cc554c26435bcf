# Shell functions that read hostdevd's ledger without hostdevd, for the
# maintainer scripts (postrm runs after the binaries are gone) and tests.
# POSIX sh and awk only: a host being cleaned up may have nothing else.
# build-deb.sh pastes this file into prerm and postrm.

# The ledger in effect in directory $1, as one line of JSON: the last complete
# line of ledger.journal when there is one (it supersedes the snapshot),
# else ledger.json. Prints nothing when there is no ledger.
hostdevd_ledger_text() {
  _line=
  if [ -s "$1/ledger.journal" ]; then
    # Complete lines only: a torn last line (no newline) was never acted on.
    # ($(tail -c 1) is empty exactly when the file ends in a newline.)
    _line=$(if [ -n "$(tail -c 1 "$1/ledger.journal")" ]; then sed '$d' "$1/ledger.journal"; else cat "$1/ledger.journal"; fi |
      awk 'NF { last = $0 } END { print last }')
  fi
  if [ -n "$_line" ]; then
    printf '%s\n' "$_line"
  elif [ -s "$1/ledger.json" ]; then
    tr -d '\n' <"$1/ledger.json"; echo
  fi
  return 0
}

# The devices the ledger in directory $1 holds, one per line:
# "ADDRESS ORIGINAL_DRIVER VM" ("-" where the ledger has none).
hostdevd_held_devices() {
  hostdevd_ledger_text "$1" | awk '
    # The value of the top-level "devices" key, found by walking the JSON
    # with its strings and nesting (keys and values never hold braces the
    # walk could mistake: strings are skipped whole).
    {
      text = $0; n = length(text); depth = 0; i = 1
      while (i <= n) {
        c = substr(text, i, 1)
        if (c == "\"") {
          j = i + 1
          while (j <= n && substr(text, j, 1) != "\"") { if (substr(text, j, 1) == "\\") j++; j++ }
          s = substr(text, i + 1, j - i - 1)
          if (depth == 1 && s == "devices") {
            k = j + 1
            while (k <= n && substr(text, k, 1) ~ /[ :\t]/) k++
            if (substr(text, k, 1) != "{") exit
            start = k; d = 0
            for (m = k; m <= n; m++) {
              ch = substr(text, m, 1)
              if (ch == "\"") { m++; while (m <= n && substr(text, m, 1) != "\"") { if (substr(text, m, 1) == "\\") m++; m++ } continue }
              if (ch == "{") d++
              if (ch == "}") { d--; if (d == 0) break }
            }
            devices = substr(text, start + 1, m - start - 1)
            break
          }
          i = j + 1; continue
        }
        if (c == "{" || c == "[") depth++
        if (c == "}" || c == "]") depth--
        i++
      }
      while (match(devices, /"[0-9a-fA-F]+:[0-9a-fA-F]+:[0-9a-fA-F]+\.[0-7]"[ \t]*:[ \t]*\{[^}]*\}/)) {
        entry = substr(devices, RSTART, RLENGTH); devices = substr(devices, RSTART + RLENGTH)
        address = entry; sub(/^"/, "", address); sub(/".*/, "", address)
        driver = "-"; vm = "-"
        if (match(entry, /"originalDriver"[ \t]*:[ \t]*"[^"]*"/)) { driver = substr(entry, RSTART, RLENGTH); sub(/^"originalDriver"[ \t]*:[ \t]*"/, "", driver); sub(/"$/, "", driver) }
        if (match(entry, /"vm"[ \t]*:[ \t]*"[^"]*"/)) { vm = substr(entry, RSTART, RLENGTH); sub(/^"vm"[ \t]*:[ \t]*"/, "", vm); sub(/"$/, "", vm) }
        print address, driver, vm
      }
    }'
}

# What the operator must do to give the held devices (stdin: lines of
# hostdevd_held_devices) back to their host drivers. $1: "with-binary" when
# hostdevctl is still installed, else the sysfs writes that do the same.
hostdevd_release_instructions() {
  while read -r address driver vm; do
    [ "$driver" = - ] && driver="no driver (it had none)" || driver="$driver"
    if [ "$1" = with-binary ]; then
      echo "  hostdevctl release $address    # VM $vm; back to $driver"
    else
      echo "  # $address (VM $vm): shut the VM off first; back to $driver:"
      echo "  echo > /sys/bus/pci/devices/$address/driver_override"
      echo "  echo $address > /sys/bus/pci/drivers/vfio-pci/unbind"
      echo "  echo $address > /sys/bus/pci/drivers_probe"
    fi
  done
}
