#!/bin/bash
# Submit the whole mrclass-bids pipeline: the participant job array (one task per
# participant, at most MAX_PARALLEL at a time) and the group job after it.
#
#   IN_DIR=/data/dicom OUT_DIR=/data/out SIF=$PWD/mrclass-bids.sif \
#   PARTICIPANTS_FILE=participants.txt MAX_PARALLEL=20 ./submit.sh [extra sbatch args]
#
# Without PARTICIPANTS_FILE the sub-* folders of IN_DIR are counted (BIDS input); a tree
# without them (DICOM input) is asked once for its labels (mrclass-bids --list-participants),
# written to LIST_FILE (default: ./mrclass-participants.txt), and the headers read for it are
# kept in HEADER_INDEX (default: ./mrclass-header-index.json), which every task reuses instead
# of reading the whole tree again.
# Extra arguments go to both sbatch calls (e.g. --account=abc --partition=cpu).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${IN_DIR:?set IN_DIR}"
: "${OUT_DIR:?set OUT_DIR}"

if [[ -z ${PARTICIPANTS_FILE:-} ]] && ! compgen -G "$IN_DIR/sub-*/" > /dev/null; then
    SIF=${SIF:-$PWD/mrclass-bids.sif}
    SINGULARITY=${SINGULARITY:-$(command -v apptainer || command -v singularity || echo singularity)}
    PARTICIPANTS_FILE=${LIST_FILE:-$PWD/mrclass-participants.txt}
    HEADER_INDEX=${HEADER_INDEX:-$PWD/mrclass-header-index.json}
    export HEADER_INDEX
    "$SINGULARITY" run --cleanenv -B "$IN_DIR":/in:ro -B "$(dirname "$HEADER_INDEX")":/index \
        "$SIF" /in /tmp participant --list-participants \
        --header-index "/index/$(basename "$HEADER_INDEX")" > "$PARTICIPANTS_FILE"
fi
if [[ -n ${PARTICIPANTS_FILE:-} ]]; then
    PARTICIPANTS_FILE=$(cd "$(dirname "$PARTICIPANTS_FILE")" && pwd)/$(basename "$PARTICIPANTS_FILE")
    export PARTICIPANTS_FILE
    n=$(sed -e 's/\r$//' -e 's/#.*//' "$PARTICIPANTS_FILE" | cut -f1 \
        | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
        | grep -c -v -e '^$' -e '^participant_id$' || true)
else
    n=$(find "$IN_DIR" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' | wc -l)
fi
(( n > 0 )) || { echo "submit.sh: no participants found" >&2; exit 2; }

export IN_DIR OUT_DIR
array_job=$(sbatch --parsable "$@" --array="1-${n}%${MAX_PARALLEL:-20}" \
                "$here/participant_array.sbatch")
array_job=${array_job%%;*}   # --parsable prints "jobid[;cluster]"
group_job=$(sbatch --parsable "$@" --dependency="afterok:${array_job}" "$here/group.sbatch")
group_job=${group_job%%;*}
echo "participants: $n  array job: $array_job  group job: $group_job (afterok:$array_job)"
