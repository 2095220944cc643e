#!/usr/bin/env bash
# Creates what `docker compose up` needs and git must never hold:
#   .env                                 from deploy/env.example, mode 600, with random
#                                        AUTOMATEOS_INTERNAL_TOKEN and POSTGRES_PASSWORD
#   deploy/secrets/auth-signing-key.pem  the auth service's RSA signing key (compose secret)
#   deploy/secrets/master-key            the credentials' master key, base64 of 32 random bytes
#                                        (compose secret of workflows and engine)
#
# Idempotent: an existing secret is never replaced. Running it again only fills what is missing:
# variables added to env.example since, secrets left empty in .env, a missing key file.
# Needs openssl, or else a python3 that has the `cryptography` package (the repo's .venv does).
set -euo pipefail
umask 077

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "$deploy_dir")
example=$deploy_dir/env.example
env_file=$root_dir/.env
secrets_dir=$deploy_dir/secrets
key_file=$secrets_dir/auth-signing-key.pem
master_key_file=$secrets_dir/master-key
secret_vars=(AUTOMATEOS_INTERNAL_TOKEN POSTGRES_PASSWORD)

say() { printf 'make-secrets: %s\n' "$*"; }
die() { printf 'make-secrets: %s\n' "$*" >&2; exit 1; }

python_with_cryptography() {
    local py
    for py in "$root_dir/.venv/bin/python" python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import cryptography' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# 64 hex characters: nothing that needs quoting in .env or escaping in a database URL.
random_secret() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import secrets; print(secrets.token_hex(32))'
    else
        die "need openssl or python3 to generate secrets"
    fi
}

is_secret() {
    local name=$1 s
    for s in "${secret_vars[@]}"; do [[ $s == "$name" ]] && return 0; done
    return 1
}

# The value of NAME in FILE ("" when unset or empty); returns 1 when NAME is not in FILE at all.
value_in() {
    local name=$1 file=$2 line
    line=$(grep -E "^${name}=" "$file" | tail -n 1) || return 1
    printf '%s' "${line#*=}"
}

[[ -f $example ]] || die "$example not found"

# ---- .env -----------------------------------------------------------------------------------
# Work on a copy next to .env, then rename: .env is never seen half-written.
tmp=$(mktemp "$root_dir/.env.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if [[ -f $env_file ]]; then
    cat "$env_file" >"$tmp"
    # Append each variable that env.example has and .env lacks, with the comment above it.
    comments=()
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
            name=${BASH_REMATCH[1]}
            if ! value_in "$name" "$tmp" >/dev/null; then
                { printf '\n'; ((${#comments[@]})) && printf '%s\n' "${comments[@]}"; printf '%s\n' "$line"; } >>"$tmp"
                say "added $name to .env"
            fi
            comments=()
        elif [[ $line == \#* ]]; then
            comments+=("$line")
        else
            comments=()
        fi
    done <"$example"
else
    cat "$example" >"$tmp"
    say "creating .env from deploy/env.example"
fi

# Fill each secret that is empty; one that has a value is left alone.
for name in "${secret_vars[@]}"; do
    current=$(value_in "$name" "$tmp") || current=""
    if [[ -z $current ]]; then
        value=$(random_secret)
        # Replace the (empty) assignment in place, or append one when the name is absent.
        if grep -qE "^${name}=" "$tmp"; then
            awk -v n="$name" -v v="$value" 'index($0, n "=") == 1 && !done { print n "=" v; done = 1; next } { print }' \
                "$tmp" >"$tmp.new" && mv "$tmp.new" "$tmp"
        else
            printf '%s=%s\n' "$name" "$value" >>"$tmp"
        fi
        say "generated $name"
    fi
done

if [[ -f $env_file ]] && cmp -s "$tmp" "$env_file"; then
    say ".env is complete; nothing changed"
else
    chmod 600 "$tmp"
    mv "$tmp" "$env_file"
fi
chmod 600 "$env_file"

# ---- the signing key --------------------------------------------------------------------------
mkdir -p "$secrets_dir"
chmod 700 "$secrets_dir"
if [[ -s $key_file ]]; then
    say "kept the existing signing key ${key_file#"$root_dir"/}"
else
    key_tmp=$(mktemp "$secrets_dir/.key.XXXXXX")
    trap 'rm -f "$tmp" "$key_tmp"' EXIT
    if command -v openssl >/dev/null 2>&1; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$key_tmp" 2>/dev/null
    elif py=$(python_with_cryptography); then
        "$py" - "$key_tmp" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
with open(sys.argv[1], "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
PY
    else
        die "need openssl, or python3 with the cryptography package, to create the signing key"
    fi
    mv "$key_tmp" "$key_file"
    say "generated the signing key ${key_file#"$root_dir"/} (RSA 3072)"
fi
# The folder (700) keeps other users of this machine out. The file itself must be readable by the
# container's unprivileged user (uid 10001), which does not own it: compose bind-mounts file
# secrets with their host owner and mode.
chmod 644 "$key_file"

# ---- the credentials' master key ----------------------------------------------------------------
if [[ -s $master_key_file ]]; then
    say "kept the existing master key ${master_key_file#"$root_dir"/}"
else
    mk_tmp=$(mktemp "$secrets_dir/.mk.XXXXXX")
    trap 'rm -f "$tmp" "$mk_tmp"' EXIT
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -base64 32 >"$mk_tmp"
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())' >"$mk_tmp"
    else
        die "need openssl or python3 to create the master key"
    fi
    mv "$mk_tmp" "$master_key_file"
    say "generated the credentials' master key ${master_key_file#"$root_dir"/} (losing it loses every credential)"
fi
chmod 644 "$master_key_file"  # as the signing key: read by the containers' user through the bind mount
