// Must not compile: journaled and conflate_by on one type (the journal settles each event it
// wrote; conflation replaces waiting ones in place). The build checks the static_assert's text.
#include <tachyon/tachyon.hpp>
struct Quote {
  int instrument;
  double px;
};
using Events =
    tachyon::registry<tachyon::event<Quote, tachyon::priority::normal,
                                     tachyon::conflate_by<&Quote::instrument>, tachyon::journaled>>;
int main() {
  tachyon::bus<Events> bus{{.workers = 0}};
  return 0;
}
