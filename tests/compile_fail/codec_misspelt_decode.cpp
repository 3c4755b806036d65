// Must not compile: Tick is trivially copyable and its codec's decode lacks the version
// argument, so without the check it would quietly travel as its raw bytes. The build checks the
// static_assert's text.
#include <cstdint>
#include <string_view>
#include <vector>

#include <tachyon/codec.hpp>
struct Tick {
  std::uint32_t instrument;
  float price;
};
template <>
struct tachyon::codec<Tick> {
  static constexpr std::string_view name = "md.Tick";
  static constexpr std::uint32_t version = 1;
  static void encode(const Tick& t, tachyon::writer& w) {
    w.put(t.instrument);
    w.put(t.price);
  }
  static Tick decode(tachyon::reader& r) { return {r.get<std::uint32_t>(), r.get<float>()}; }
};
int main() {
  std::vector<std::byte> out;
  tachyon::encode(Tick{1, 2.0f}, out);
}
