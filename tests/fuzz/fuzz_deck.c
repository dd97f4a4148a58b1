/* fuzz_deck.c — fuzz target of the deck parser (gn_deck_parse on arbitrary bytes).
 *
 * Input: the deck text up to the first NUL byte; after it, up to 8 -P overrides separated by
 * newlines. Properties: no crash or sanitizer report; a refused deck gives GN_EINPUT with a
 * message; an accepted deck's effective form (gn_deck_format) parses again and formats to the
 * same text (what run.h5 records must be a deck that reproduces the run). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "gnrev/input/deck.h"

enum { FUZZ_DECK_MAX_OVERRIDES = 8 };

static int fuzz_deck_run(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return GN_ENOMEM;
  if (size) memcpy(text, data, size);
  text[size] = '\0';
  const char *ov[FUZZ_DECK_MAX_OVERRIDES];
  int nov = 0;
  size_t tl = strlen(text);
  if (tl < size) {
    /* The bytes after the NUL: overrides, one per line (a later NUL ends the list). */
    char *p = text + tl + 1;
    while (nov < FUZZ_DECK_MAX_OVERRIDES && p < text + size && *p) {
      ov[nov++] = p;
      char *nl = strchr(p, '\n');
      if (!nl) break;
      *nl = '\0';
      p = nl + 1;
    }
  }
  gn_deck deck;
  gn_error_clear();
  int st = gn_deck_parse(text, "fuzz.nml", ov, nov, &deck);
  if (st != GN_OK) {
    if (st != GN_EINPUT) fuzz_violation("deck: status %d (%s), expected input error", st, gn_status_name(st));
    fuzz_check_refusal("deck", st);
    free(text);
    return st;
  }
  char *eff = gn_deck_format(&deck);
  if (!eff) {
    free(text);
    return GN_ENOMEM;
  }
  gn_deck again;
  int st2 = gn_deck_parse(eff, "effective.nml", NULL, 0, &again);
  if (st2 != GN_OK) {
    fuzz_violation("deck: the effective deck of an accepted deck is refused: %s\n--- effective deck:\n%s",
                   gn_error_message(), eff);
  } else {
    char *eff2 = gn_deck_format(&again);
    if (eff2 && strcmp(eff, eff2) != 0)
      fuzz_violation("deck: the effective deck does not reproduce itself\n--- first:\n%s--- second:\n%s", eff,
                     eff2);
    free(eff2);
  }
  free(eff);
  free(text);
  return GN_OK;
}

#ifndef GN_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_deck_run(data, size);
  return 0;
}
#endif
