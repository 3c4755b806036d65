// Must not compile: a journaled type that is neither trivially copyable nor has a codec with
// encode and decode. The build checks the static_assert's text.
#include <string>

#include <tachyon/tachyon.hpp>
struct Comment {
  std::string text;
};
using Events =
    tachyon::registry<tachyon::event<Comment, tachyon::priority::normal, tachyon::journaled>>;
int main() {
  tachyon::bus<Events> bus{{.workers = 0}};
  return 0;
}
