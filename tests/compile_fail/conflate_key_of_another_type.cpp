// Must not compile: conflate_by's member belongs to another type than the event. The build
// checks the static_assert's text.
#include <cstdint>

#include <tachyon/tachyon.hpp>
struct Quote {
  std::uint32_t instrument;
};
struct Trade {
  std::uint32_t instrument;
};
using Events = tachyon::registry<
    tachyon::event<Trade, tachyon::priority::normal, tachyon::conflate_by<&Quote::instrument>>>;
int main() {
  tachyon::bus<Events> bus{{.workers = 0}};
  return 0;
}
