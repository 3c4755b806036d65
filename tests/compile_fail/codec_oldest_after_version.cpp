// Must not compile: the codec's oldest version is newer than its current one, so no version
// would ever decode. The build checks the static_assert's text.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tachyon/codec.hpp>
struct Order {
  std::string note;
};
template <>
struct tachyon::codec<Order> {
  static constexpr std::string_view name = "shop.Order";
  static constexpr std::uint32_t version = 1;
  static constexpr std::uint32_t oldest = 2;
  static void encode(const Order& o, tachyon::writer& w) { w.put(std::string_view(o.note)); }
  static Order decode(tachyon::reader& r, std::uint32_t) { return {r.get_string()}; }
};
int main() {
  std::vector<std::byte> out;
  tachyon::encode(Order{"x"}, out);
}
