# Sourced by tools/gpu-check.sh: runs its steps one after another under a hard deadline, writes
# each step's output under the output folder while the step runs, and keeps every step's verdict.
#
# The output folder holds at most four files (a GPU machine hands back at most 8 files from it,
# 16 MiB each):
#   summary.txt   the notes and the verdict of every step so far, rewritten after each step and
#                 printed last;
#   current.log   the output of the step running now: what a call killed in mid-step brings back;
#   logs.tar.gz   the logs of the finished steps (and the benchmarks' JSON), rewritten after each;
#   tables.md     the benchmark tables, when there are any (printed before the summary).
#
# A verdict is one of: passed | FAILED (why) | incomplete (why: timed out, or the deadline came
# before it could start) | unavailable (why: the machine refuses a tool) | skipped (why) | not run
# (dry run, practice). The exit status is 1 when a step FAILED, else 2 when one is incomplete,
# else 0: "unavailable", "skipped" and "not run" are said in the summary and change nothing.

STEPS_RESERVE=${STEPS_RESERVE:-8}  # seconds kept before the deadline for the final summary

# steps_begin OUT BUDGET TITLE...: a fresh output folder; the deadline is BUDGET seconds from now.
steps_begin() {
  STEPS_OUT=$1
  STEPS_BUDGET=$2
  shift 2
  mkdir -p "$STEPS_OUT"
  STEPS_OUT=$(cd "$STEPS_OUT" && pwd)
  rm -f "$STEPS_OUT/summary.txt" "$STEPS_OUT/current.log" "$STEPS_OUT/logs.tar.gz" "$STEPS_OUT/tables.md"
  STEPS_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ewnet-gpu-check.XXXXXX")
  STEPS_START=$SECONDS
  STEPS_DEADLINE=$((SECONDS + STEPS_BUDGET))
  STEPS_TITLE="$* $(date -u '+%Y-%m-%d %H:%M UTC'), budget ${STEPS_BUDGET} s"
  STEPS_NOTES=()
  STEPS_ROWS=()
  STEPS_FAILED=0
  STEPS_INCOMPLETE=0
  STEPS_COUNT=0
  trap 'steps_interrupted' TERM INT
  steps_write_summary
}

# Seconds left for steps before the deadline (the reserve kept aside).
steps_left() { echo $((STEPS_DEADLINE - STEPS_RESERVE - SECONDS)); }

# steps_note TEXT: a line above the verdict table (device, toolkit, which cuDNN, ...).
steps_note() {
  STEPS_NOTES+=("$1")
  echo "   $1"
  steps_write_summary
}

steps_write_summary() {
  local tmp=$STEPS_OUT/summary.txt.tmp line
  {
    echo "ewnet gpu-check: $STEPS_TITLE"
    for line in "${STEPS_NOTES[@]}"; do echo "  $line"; done
    printf '%-28s %7s  %s\n' step seconds verdict
    for line in "${STEPS_ROWS[@]}"; do echo "$line"; done
    [[ -n ${STEPS_TOTAL:-} ]] && echo "$STEPS_TOTAL"
  } > "$tmp"
  mv "$tmp" "$STEPS_OUT/summary.txt"
}

steps_pack() {
  tar czf "$STEPS_OUT/logs.tar.gz.tmp" -C "$STEPS_LOGS" . && mv "$STEPS_OUT/logs.tar.gz.tmp" "$STEPS_OUT/logs.tar.gz"
}

# verdict NAME SECONDS VERDICT: records a step's verdict, then rewrites the summary and the logs.
verdict() {
  local row
  row=$(printf '%-28s %7s  %s' "$1" "$2" "$3")
  STEPS_ROWS+=("$row")
  echo "$row"
  case $3 in
    FAILED*) STEPS_FAILED=$((STEPS_FAILED + 1)) ;;
    incomplete*) STEPS_INCOMPLETE=$((STEPS_INCOMPLETE + 1)) ;;
  esac
  steps_write_summary
  steps_pack
}

# step_start NAME CAP: false (and the verdict "incomplete") when under 5 seconds are left;
# otherwise sets STEP_NAME, STEP_LIMIT (CAP, or what is left if less) and STEP_CUT (1 when the
# deadline, not CAP, set the limit) and opens current.log.
step_start() {
  local left
  STEP_NAME=$1
  STEP_T0=$SECONDS
  left=$(steps_left)
  if ((left < 5)); then
    verdict "$1" 0 "incomplete (not started: the deadline came first)"
    return 1
  fi
  STEP_LIMIT=$2
  STEP_CUT=0
  if ((left < STEP_LIMIT)); then
    STEP_LIMIT=$left
    STEP_CUT=1
  fi
  STEPS_COUNT=$((STEPS_COUNT + 1))
  STEP_LOG=$STEPS_LOGS/$(printf '%02d' "$STEPS_COUNT")-$1.log
  echo "== $1 (at most ${STEP_LIMIT} s)"
  echo "== $1 $(date -u '+%H:%M:%S'), at most ${STEP_LIMIT} s" > "$STEPS_OUT/current.log"
}

# step_end: closes current.log into the step's log; sets STEP_SECONDS.
step_end() {
  STEP_SECONDS=$((SECONDS - STEP_T0))
  mv "$STEPS_OUT/current.log" "$STEP_LOG"
}

# step_run NAME CAP COMMAND...: runs an external command under `timeout` (its whole process
# group), output into current.log as it comes. Sets STEP_RC and STEP_TIMED_OUT; the caller
# decides the verdict (reading STEP_LOG). Returns 1 when the step could not start.
step_run() {
  step_start "$1" "$2" || return 1
  shift 2
  echo "\$ $*" >> "$STEPS_OUT/current.log"
  timeout --kill-after=5 "$STEP_LIMIT" "$@" >> "$STEPS_OUT/current.log" 2>&1 < /dev/null
  STEP_RC=$?
  STEP_TIMED_OUT=0
  ((STEP_RC == 124 || STEP_RC == 137)) && ((SECONDS - STEP_T0 >= STEP_LIMIT)) && STEP_TIMED_OUT=1
  step_end
  return 0
}

# step_here NAME FUNCTION ARGS...: runs a shell function of this script (quick ones, whose
# variables must stay set) with its output into current.log, and records passed or FAILED(rc).
step_here() {
  local name=$1
  step_start "$name" 99999 || return 1
  shift
  "$@" >> "$STEPS_OUT/current.log" 2>&1
  STEP_RC=$?
  step_end
  if ((STEP_RC == 0)); then
    verdict "$name" "$STEP_SECONDS" passed
  else
    verdict "$name" "$STEP_SECONDS" "FAILED (rc $STEP_RC: $(steps_last_error "$STEP_LOG"))"
  fi
  return $STEP_RC
}

# The verdict of a step that ran a program: passed, incomplete when it timed out, else FAILED.
step_plain_verdict() {
  if ((STEP_TIMED_OUT)); then
    verdict "$STEP_NAME" "$STEP_SECONDS" "incomplete (timed out after $STEP_LIMIT s$( ((STEP_CUT)) && echo ', cut by the deadline'))"
  elif ((STEP_RC == 0)); then
    verdict "$STEP_NAME" "$STEP_SECONDS" passed
  else
    verdict "$STEP_NAME" "$STEP_SECONDS" "FAILED (rc $STEP_RC: $(steps_last_error "$STEP_LOG"))"
  fi
}

# The line of a log that says what went wrong: the last line naming an error or a failure, else
# its last line that is not blank.
steps_last_error() {
  local line
  line=$(grep -E 'ERROR|FAILED|[Ee]rror|[Ff]ailed|BAD ' "$1" | grep -v '^\$ ' | tail -1)
  [[ -n $line ]] || line=$(grep -v '^[[:space:]]*$' "$1" | tail -1)
  line=$(sed 's/^[[:space:]]*//' <<< "$line")
  echo "${line:0:160}"
}

steps_interrupted() {
  [[ -f $STEPS_OUT/current.log ]] && mv "$STEPS_OUT/current.log" "$STEPS_LOGS/interrupted-${STEP_NAME:-step}.log"
  STEPS_ROWS+=("$(printf '%-28s %7s  %s' "${STEP_NAME:-?}" - "incomplete (the script was interrupted)")")
  STEPS_INCOMPLETE=$((STEPS_INCOMPLETE + 1))
  steps_finish
}

# steps_finish: the total line, the logs, the tables then the summary printed last; exits.
steps_finish() {
  local status=0 total
  trap - TERM INT
  if ((STEPS_FAILED)); then
    status=1
    total="FAILED ($STEPS_FAILED failed, $STEPS_INCOMPLETE incomplete)"
  elif ((STEPS_INCOMPLETE)); then
    status=2
    total="incomplete ($STEPS_INCOMPLETE steps did not finish or start; nothing failed)"
  else
    total="passed"
  fi
  STEPS_TOTAL=$(printf '%-28s %7s  %s' total $((SECONDS - STEPS_START)) "$total")
  steps_write_summary
  steps_pack && rm -rf "$STEPS_LOGS"
  echo
  if [[ -s $STEPS_OUT/tables.md ]]; then
    cat "$STEPS_OUT/tables.md"
    echo
  fi
  echo "logs: $STEPS_OUT/logs.tar.gz"
  cat "$STEPS_OUT/summary.txt"
  exit $status
}
