#!/bin/bash
# test_deck_fortran.sh — gfortran as an independent oracle for the deck syntax.
#
# A small Fortran program declares the six namelist groups with the types of gn_deck and reads
# decks with READ(nml=...). Checked:
#  (a) the effective decks written by gn_deck_format (defaults, a non-default deck) are read by
#      gfortran without error and give exactly the values gnrev holds (reals compared bit for bit);
#  (b) a deck using every syntax feature, and the committed example decks (input/*.nml,
#      input/paper/*.nml), are read by gfortran without error; read on top of gnrev's effective
#      deck for them, they leave every value as gnrev parsed it.
# The effective decks and value dumps come from build/tests/test_deck run with DECK_OUT_DIR set.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

if ! command -v gfortran >/dev/null 2>&1; then
  echo "1..0 # SKIP the gfortran oracle: gfortran not installed (tools/install-deps.sh installs it)"
  exit 0
fi

. tests/sh/tap.sh
examples=()
for f in input/*.nml input/paper/*.nml; do
  [ -e "$f" ] && examples+=("$f")
done
# compile 1, effective decks written 1, defaults and custom 2 x 2, syntax deck 3, 3 per example.
plan $((9 + 3 * ${#examples[@]}))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/oracle.f90" <<'EOF'
! Reads each deck named on the command line (all six groups, in turn, on top of the previous
! values), prints "ios <file#> <group> <iostat> <message>" per group, then every value:
! integers in decimal, reals as the integer of their bits, logicals T/F, strings trimmed,
! enum names in lower case.
program deck_oracle
  implicit none
  character(len=128) :: name
  character(len=1024) :: out_dir, path, restart
  character(len=32) :: source, activation, method, loss, output_hessian, pinv, damping_mode, ggn_mode
  character(len=32) :: train_eval, ntk_space, ntk_probe, cka_probe, ntk_output_probe, keep_features
  integer(8) :: ntk_output_samples, probe_seed
  integer(8) :: seed, epochs, max_steps, log_every
  integer(8) :: n_train, n_test, batch_size, dim, classes, synthetic_train, synthetic_test
  integer(8) :: blocks, hidden, every, keep
  integer(8) :: eval_every, ntk_every, ntk_samples, cka_every, cka_samples, weights_every
  integer(8) :: ggn_every, ggn_samples, ggn_mc_samples, ggn_top_k
  real(8) :: divergence_factor
  real(8) :: init_std, proj_gain, lr, momentum, beta1, beta2, eps, weight_decay, rtol, atol, damping
  logical :: shuffle, linear_first_block, bias, nesterov, gn_reference, batch_change, ntk_save_matrix
  namelist /run/ name, out_dir, seed, epochs, max_steps, log_every, divergence_factor
  namelist /data/ source, path, n_train, n_test, batch_size, shuffle, dim, classes, &
                  synthetic_train, synthetic_test
  namelist /model/ blocks, hidden, activation, linear_first_block, bias, init_std, proj_gain
  namelist /optim/ method, lr, loss, momentum, nesterov, beta1, beta2, eps, weight_decay, &
                   output_hessian, pinv, rtol, atol, damping, gn_reference, damping_mode, keep_features
  namelist /checkpoint/ every, keep, restart
  namelist /diagnostics/ eval_every, train_eval, batch_change, ntk_every, ntk_samples, ntk_save_matrix, &
                         ntk_space, ntk_output_samples, ntk_probe, ntk_output_probe, &
                         cka_every, cka_samples, cka_probe, probe_seed, &
                         weights_every, ggn_every, ggn_samples, ggn_mode, &
                         ggn_mc_samples, ggn_top_k
  character(len=4096) :: file
  integer :: i

  ! Sentinels: a key missing from an effective deck shows up in the comparison.
  name = 'UNSET'; out_dir = 'UNSET'; path = 'UNSET'; restart = 'UNSET'
  source = 'UNSET'; activation = 'UNSET'; method = 'UNSET'; loss = 'UNSET'
  output_hessian = 'UNSET'; pinv = 'UNSET'; damping_mode = 'UNSET'; ggn_mode = 'UNSET'; train_eval = 'UNSET'
  ntk_space = 'UNSET'; ntk_probe = 'UNSET'; ntk_output_probe = 'UNSET'; cka_probe = 'UNSET'
  keep_features = 'UNSET'
  ntk_output_samples = -777; probe_seed = -777
  seed = -777; epochs = -777; max_steps = -777; log_every = -777; divergence_factor = -777
  n_train = -777; n_test = -777; batch_size = -777; dim = -777; classes = -777
  synthetic_train = -777; synthetic_test = -777; blocks = -777; hidden = -777; every = -777
  keep = -777; eval_every = -777; ntk_every = -777; ntk_samples = -777; cka_every = -777
  cka_samples = -777; weights_every = -777; ggn_every = -777; ggn_samples = -777
  ggn_mc_samples = -777; ggn_top_k = -777
  init_std = -777; proj_gain = -777; lr = -777; momentum = -777; beta1 = -777; beta2 = -777
  eps = -777; weight_decay = -777; rtol = -777; atol = -777; damping = -777
  shuffle = .false.; linear_first_block = .false.; bias = .false.; nesterov = .false.
  gn_reference = .false.; batch_change = .false.; ntk_save_matrix = .false.

  do i = 1, command_argument_count()
    call get_command_argument(i, file)
    call read_all(trim(file), i)
  end do

  write(*, '(a,1x,a)') 'name', trim(name)
  write(*, '(a,1x,a)') 'out_dir', trim(out_dir)
  call wi('seed', seed); call wi('epochs', epochs); call wi('max_steps', max_steps)
  call wi('log_every', log_every); call wr('divergence_factor', divergence_factor)
  call ws('source', source)
  write(*, '(a,1x,a)') 'path', trim(path)
  call wi('n_train', n_train); call wi('n_test', n_test); call wi('batch_size', batch_size)
  call wl('shuffle', shuffle); call wi('dim', dim); call wi('classes', classes)
  call wi('synthetic_train', synthetic_train); call wi('synthetic_test', synthetic_test)
  call wi('blocks', blocks); call wi('hidden', hidden); call ws('activation', activation)
  call wl('linear_first_block', linear_first_block); call wl('bias', bias)
  call wr('init_std', init_std); call wr('proj_gain', proj_gain)
  call ws('method', method); call wr('lr', lr); call ws('loss', loss); call wr('momentum', momentum)
  call wl('nesterov', nesterov); call wr('beta1', beta1); call wr('beta2', beta2); call wr('eps', eps)
  call wr('weight_decay', weight_decay); call ws('output_hessian', output_hessian)
  call ws('pinv', pinv); call wr('rtol', rtol); call wr('atol', atol); call wr('damping', damping)
  call wl('gn_reference', gn_reference); call ws('damping_mode', damping_mode)
  call ws('keep_features', keep_features)
  call wi('every', every); call wi('keep', keep)
  write(*, '(a,1x,a)') 'restart', trim(restart)
  call wi('eval_every', eval_every); call ws('train_eval', train_eval); call wl('batch_change', batch_change)
  call wi('ntk_every', ntk_every); call wi('ntk_samples', ntk_samples)
  call wl('ntk_save_matrix', ntk_save_matrix); call ws('ntk_space', ntk_space)
  call wi('ntk_output_samples', ntk_output_samples); call ws('ntk_probe', ntk_probe)
  call ws('ntk_output_probe', ntk_output_probe)
  call wi('cka_every', cka_every)
  call wi('cka_samples', cka_samples); call ws('cka_probe', cka_probe)
  call wi('probe_seed', probe_seed); call wi('weights_every', weights_every)
  call wi('ggn_every', ggn_every); call wi('ggn_samples', ggn_samples); call ws('ggn_mode', ggn_mode)
  call wi('ggn_mc_samples', ggn_mc_samples); call wi('ggn_top_k', ggn_top_k)

contains

  subroutine read_all(fname, k)
    character(len=*), intent(in) :: fname
    integer, intent(in) :: k
    integer :: u, ios
    character(len=512) :: msg
    open(newunit=u, file=fname, status='old', action='read')
    msg = ''; read(u, nml=run, iostat=ios, iomsg=msg); call report(k, 'run', ios, msg)
    rewind(u)
    msg = ''; read(u, nml=data, iostat=ios, iomsg=msg); call report(k, 'data', ios, msg)
    rewind(u)
    msg = ''; read(u, nml=model, iostat=ios, iomsg=msg); call report(k, 'model', ios, msg)
    rewind(u)
    msg = ''; read(u, nml=optim, iostat=ios, iomsg=msg); call report(k, 'optim', ios, msg)
    rewind(u)
    msg = ''; read(u, nml=checkpoint, iostat=ios, iomsg=msg); call report(k, 'checkpoint', ios, msg)
    rewind(u)
    msg = ''; read(u, nml=diagnostics, iostat=ios, iomsg=msg); call report(k, 'diagnostics', ios, msg)
    close(u)
  end subroutine

  subroutine report(k, g, ios, msg)
    integer, intent(in) :: k, ios
    character(len=*), intent(in) :: g, msg
    write(*, '(a,i0,1x,a,1x,i0,1x,a)') 'ios ', k, g, ios, trim(msg)
  end subroutine

  subroutine wi(key, v)
    character(len=*), intent(in) :: key
    integer(8), intent(in) :: v
    write(*, '(a,1x,i0)') key, v
  end subroutine

  subroutine wr(key, v)
    character(len=*), intent(in) :: key
    real(8), intent(in) :: v
    write(*, '(a,1x,i0)') key, transfer(v, 0_8)
  end subroutine

  subroutine wl(key, v)
    character(len=*), intent(in) :: key
    logical, intent(in) :: v
    write(*, '(a,1x,l1)') key, v
  end subroutine

  subroutine ws(key, v)
    character(len=*), intent(in) :: key, v
    character(len=len(v)) :: low
    integer :: j
    low = v
    do j = 1, len(low)
      if (low(j:j) >= 'A' .and. low(j:j) <= 'Z') low(j:j) = achar(iachar(low(j:j)) + 32)
    end do
    write(*, '(a,1x,a)') key, trim(low)
  end subroutine
end program
EOF

if gfortran -O0 -o "$tmp/oracle" "$tmp/oracle.f90" >"$tmp/fc.log" 2>&1; then
  ok "gfortran compiles the namelist oracle"
else
  notok "gfortran compiles the namelist oracle"
  sed 's/^/# /' "$tmp/fc.log"
  exit 1
fi

bin="$BUILD/tests/test_deck"
[ -x "$bin" ] || bail_out "$bin is not built (run make tests first)"
mkdir -p "$tmp/out"
if DECK_OUT_DIR="$tmp/out" DECK_EXAMPLES="${examples[*]:-}" "$bin" >"$tmp/td.log" 2>&1; then
  ok "test_deck wrote the effective decks for the oracle"
else
  notok "test_deck wrote the effective decks for the oracle"
  grep -v '^ok - ' "$tmp/td.log" | sed 's/^/# /' | tail -n 40
fi

# check_ios <output> <file#> <groups file or ""> <label>: with a groups file, exactly the groups it
# lists must read without error (the others must hit the end of the file); without one, all six.
check_ios() {
  local out=$1 k=$2 groups=$3 label=$4 bad=""
  for g in run data model optim checkpoint diagnostics; do
    local ios
    ios=$(awk -v k="$k" -v g="$g" '$1 == "ios" && $2 == k && $3 == g {print $4}' "$out")
    if [ -z "$groups" ] || grep -qx "$g" "$groups"; then
      [ "$ios" = "0" ] || bad="$bad &$g:$(awk -v k="$k" -v g="$g" '$1 == "ios" && $2 == k && $3 == g' "$out")"
    else
      [ "${ios:-0}" -lt 0 ] 2>/dev/null || bad="$bad &$g (absent) iostat=$ios"
    fi
  done
  if [ -z "$bad" ]; then
    ok "gfortran reads $label without error"
  else
    notok "gfortran reads $label without error"
    echo "# $bad"
  fi
}

check_values() {  # <output> <expect> <label>
  if grep -v '^ios ' "$1" | diff "$2" - >"$tmp/diff" 2>&1; then
    ok "$3"
  else
    notok "$3"
    sed 's/^/# /' "$tmp/diff" | head -n 20
  fi
}

# (a) effective decks
for c in defaults custom; do
  eff="$tmp/out/$c.eff.nml"
  [ -e "$eff" ] || { notok "effective deck $c was written"; continue; }
  "$tmp/oracle" "$eff" >"$tmp/$c.out" 2>&1
  check_ios "$tmp/$c.out" 1 "" "the $c effective deck"
  check_values "$tmp/$c.out" "$tmp/out/$c.expect" "gfortran reads the same values as gnrev from the $c effective deck"
done

# (b) source decks read on top of their effective deck: every value must stay as gnrev parsed it.
check_source() {  # <case> <label>
  local c=$1 label=$2
  "$tmp/oracle" "$tmp/out/$c.eff.nml" "$tmp/out/$c.src.nml" >"$tmp/$c.out" 2>&1
  check_ios "$tmp/$c.out" 1 "" "the effective deck of $label"
  check_ios "$tmp/$c.out" 2 "$tmp/out/$c.groups" "$label"
  check_values "$tmp/$c.out" "$tmp/out/$c.expect" "gfortran and gnrev read the same values from $label"
}
if [ -e "$tmp/out/syntax.src.nml" ]; then
  check_source syntax "the every-syntax-feature deck"
else
  notok "the every-syntax-feature deck was written"
fi

if [ ${#examples[@]} -eq 0 ]; then
  echo "# no example decks in input/ or input/paper/ yet"
fi
for i in "${!examples[@]}"; do
  f=${examples[$i]}
  if [ -e "$tmp/out/example$i.src.nml" ]; then
    check_source "example$i" "$f"
  else
    notok "gnrev accepts $f"
    grep -A 30 "$f" "$tmp/td.log" | sed 's/^/# /' | head -n 30
    "$tmp/oracle" "$f" >"$tmp/ex$i.out" 2>&1
    grep '^ios 1' "$tmp/ex$i.out" | sed 's/^/# gfortran: /'
  fi
done

tap_finish
