// Must not compile: conflate_by with room for no key. The build checks the static_assert's text.
#include <cstdint>

#include <tachyon/tachyon.hpp>
struct Quote {
  std::uint32_t instrument;
};
using Events = tachyon::registry<
    tachyon::event<Quote, tachyon::priority::normal, tachyon::conflate_by<&Quote::instrument, 0>>>;
int main() {
  tachyon::bus<Events> bus{{.workers = 0}};
  return 0;
}
