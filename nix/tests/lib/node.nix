# What every VM test node needs: the module, and the binary and curl on PATH for the test script.
self:
{ pkgs, ... }:
{
  imports = [ self.nixosModules.default ];
  environment.systemPackages = [
    self.packages.${pkgs.stdenv.hostPlatform.system}.default
    pkgs.curl
  ];
  services.mcp-server.enable = true;
}
