// What a host sees when the macro that embedded its migrations wrote another format than its
// runtime reads (two versions of migrate in one build).
const _: () = migrate::__private::check_pack_format(0);

fn main() {}
