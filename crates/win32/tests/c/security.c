/* Security descriptors from C, as Windows programs build them: by hand
   (InitializeSecurityDescriptor + an ACL), with a NULL DACL, and from SDDL;
   the broker enforces them on every open. */
#include <windows.h>
#include <sddl.h>
#include <aclapi.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

static void sids(void) {
    SID_IDENTIFIER_AUTHORITY world = SECURITY_WORLD_SID_AUTHORITY;
    PSID everyone = NULL;
    CHECK(AllocateAndInitializeSid(&world, 1, SECURITY_WORLD_RID, 0, 0, 0, 0, 0, 0, 0, &everyone));
    CHECK(IsValidSid(everyone) && GetLengthSid(everyone) == 12);
    BYTE buf[SECURITY_MAX_SID_SIZE];
    DWORD size = 4;
    CHECK_ERR(CreateWellKnownSid(WinWorldSid, NULL, buf, &size), FALSE, ERROR_INSUFFICIENT_BUFFER);
    CHECK(size == 12);
    size = sizeof buf;
    CHECK(CreateWellKnownSid(WinWorldSid, NULL, buf, &size) && EqualSid(buf, everyone));
    LPSTR text = NULL;
    CHECK(ConvertSidToStringSidA(everyone, &text) && strcmp(text, "S-1-1-0") == 0);
    LocalFree(text);
    PSID admins = NULL;
    CHECK(ConvertStringSidToSidA("S-1-5-32-544", &admins));
    size = sizeof buf;
    CHECK(CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, buf, &size) && EqualSid(buf, admins));
    CHECK(!EqualSid(admins, everyone));
    CHECK_ERR(ConvertStringSidToSidA("S-1-x", &admins), FALSE, ERROR_INVALID_SID);
    LocalFree(admins);
    CHECK(FreeSid(everyone) == NULL);
}

static void by_hand(void) {
    /* Everyone may wait on the event; nobody but its creator's handle may set it. */
    SID_IDENTIFIER_AUTHORITY world = SECURITY_WORLD_SID_AUTHORITY;
    PSID everyone = NULL;
    CHECK(AllocateAndInitializeSid(&world, 1, SECURITY_WORLD_RID, 0, 0, 0, 0, 0, 0, 0, &everyone));
    DWORD acl_size = sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + GetLengthSid(everyone) - sizeof(DWORD);
    PACL acl = (PACL)LocalAlloc(LPTR, acl_size);
    CHECK(InitializeAcl(acl, acl_size, ACL_REVISION));
    CHECK(AddAccessAllowedAce(acl, ACL_REVISION, SYNCHRONIZE, everyone));
    CHECK_ERR(AddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, everyone), FALSE, ERROR_ALLOTTED_SPACE_EXCEEDED);
    ACL_SIZE_INFORMATION info;
    CHECK(GetAclInformation(acl, &info, sizeof info, AclSizeInformation));
    CHECK(info.AceCount == 1 && info.AclBytesFree == 0);
    ACCESS_ALLOWED_ACE *ace = NULL;
    CHECK(GetAce(acl, 0, (LPVOID *)&ace) && ace->Mask == SYNCHRONIZE && EqualSid(&ace->SidStart, everyone));
    CHECK_ERR(GetAce(acl, 1, (LPVOID *)&ace), FALSE, ERROR_INVALID_PARAMETER);

    SECURITY_DESCRIPTOR sd;
    CHECK(InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION));
    CHECK(SetSecurityDescriptorDacl(&sd, TRUE, acl, FALSE));
    CHECK(IsValidSecurityDescriptor(&sd));
    SECURITY_ATTRIBUTES sa = {sizeof sa, &sd, FALSE};
    HANDLE e = CreateEventA(&sa, TRUE, FALSE, "Local\\sec-by-hand");
    CHECK(e != NULL && GetLastError() == 0);
    CHECK_ERR(OpenEventA(EVENT_MODIFY_STATE, FALSE, "Local\\sec-by-hand"), NULL, ERROR_ACCESS_DENIED);
    HANDLE w = OpenEventA(SYNCHRONIZE, FALSE, "Local\\sec-by-hand");
    CHECK(w != NULL);
    CHECK(SetEvent(e)); /* the creator's handle has all access */
    CHECK(WaitForSingleObject(w, 0) == WAIT_OBJECT_0);

    /* The descriptor, read back through the handle. */
    PSECURITY_DESCRIPTOR read_back = NULL;
    PACL dacl = NULL;
    CHECK(GetSecurityInfo(e, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &read_back) == 0);
    CHECK(dacl != NULL && dacl->AceCount == 1);
    /* A part without the descriptor it points into would dangle. */
    CHECK(GetSecurityInfo(e, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, NULL)
          == ERROR_INVALID_PARAMETER);
    LPSTR text = NULL;
    CHECK(ConvertSecurityDescriptorToStringSecurityDescriptorA(read_back, SDDL_REVISION_1, DACL_SECURITY_INFORMATION,
                                                               &text, NULL));
    CHECK(text && strcmp(text, "D:(A;;0x100000;;;WD)") == 0);
    LocalFree(text);
    LocalFree(read_back);
    CHECK(GetSecurityInfo(w, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &read_back)
          == ERROR_ACCESS_DENIED);

    /* A NULL DACL: everybody may do everything. */
    CHECK(SetSecurityInfo(e, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, NULL, NULL) == 0);
    HANDLE m = OpenEventA(EVENT_MODIFY_STATE, FALSE, "Local\\sec-by-hand");
    CHECK(m != NULL && ResetEvent(m));
    CloseHandle(m);
    CloseHandle(w);
    CloseHandle(e);
    LocalFree(acl);
    FreeSid(everyone);
}

static void null_dacl_and_sddl(void) {
    /* The usual porting pattern: a NULL DACL for a mapping every user may open. */
    SECURITY_DESCRIPTOR sd;
    CHECK(InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION));
    CHECK(SetSecurityDescriptorDacl(&sd, TRUE, NULL, FALSE));
    BOOL present = FALSE, defaulted = TRUE;
    PACL dacl = (PACL)1;
    CHECK(GetSecurityDescriptorDacl(&sd, &present, &dacl, &defaulted) && present && dacl == NULL && !defaulted);
    SECURITY_ATTRIBUTES sa = {sizeof sa, &sd, FALSE};
    HANDLE open_map = CreateFileMappingA(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE, 0, 4096, "Local\\sec-open");
    CHECK(open_map != NULL);

    /* SDDL: read-only for everyone. */
    PSECURITY_DESCRIPTOR psd = NULL;
    ULONG len = 0;
    CHECK(ConvertStringSecurityDescriptorToSecurityDescriptorA("D:(A;;GR;;;WD)", SDDL_REVISION_1, &psd, &len));
    CHECK(len == GetSecurityDescriptorLength(psd) && IsValidSecurityDescriptor(psd));
    CHECK_ERR(ConvertStringSecurityDescriptorToSecurityDescriptorA("D:(A;;GR;;;XX)", SDDL_REVISION_1, &psd, &len),
              FALSE, ERROR_INVALID_PARAMETER);
    SECURITY_ATTRIBUTES ro = {sizeof ro, psd, FALSE};
    HANDLE ro_map = CreateFileMappingA(INVALID_HANDLE_VALUE, &ro, PAGE_READWRITE, 0, 4096, "Local\\sec-read");
    CHECK(ro_map != NULL);
    CHECK_ERR(OpenFileMappingA(FILE_MAP_WRITE, FALSE, "Local\\sec-read"), NULL, ERROR_ACCESS_DENIED);
    HANDLE reader = OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\sec-read");
    CHECK(reader != NULL);
    CHECK_ERR(MapViewOfFile(reader, FILE_MAP_WRITE, 0, 0, 0), NULL, ERROR_ACCESS_DENIED);
    CHECK(OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, "Local\\sec-open") != NULL);

    /* Self-relative from absolute, and the lengths. */
    BYTE relative[256];
    DWORD size = 8;
    CHECK_ERR(MakeSelfRelativeSD(&sd, relative, &size), FALSE, ERROR_INSUFFICIENT_BUFFER);
    CHECK(size == 20);
    CHECK(MakeSelfRelativeSD(&sd, relative, &size) && IsValidSecurityDescriptor(relative));
    SECURITY_DESCRIPTOR_CONTROL control = 0;
    DWORD revision = 0;
    CHECK(GetSecurityDescriptorControl(relative, &control, &revision));
    CHECK((control & SE_SELF_RELATIVE) && (control & SE_DACL_PRESENT) && revision == 1);
    CHECK_ERR(SetSecurityDescriptorDacl(relative, TRUE, NULL, FALSE), FALSE, ERROR_INVALID_SECURITY_DESCR);

    /* A broken descriptor is refused, not guessed at. */
    BYTE junk[40] = {7};
    SECURITY_ATTRIBUTES bad = {sizeof bad, junk, FALSE};
    CHECK_ERR(CreateEventA(&bad, FALSE, FALSE, NULL), NULL, ERROR_INVALID_SECURITY_DESCR);
    CHECK_ERR(InitializeSecurityDescriptor(&sd, 2), FALSE, ERROR_UNKNOWN_REVISION);
    LocalFree(psd);
    CloseHandle(reader);
    CloseHandle(ro_map);
    CloseHandle(open_map);
}

static void tokens(void) {
    HANDLE token = NULL;
    CHECK(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
    DWORD needed = 0;
    CHECK_ERR(GetTokenInformation(token, TokenUser, NULL, 0, &needed), FALSE, ERROR_INSUFFICIENT_BUFFER);
    CHECK(needed >= sizeof(TOKEN_USER) + 12);
    BYTE buf[1024];
    CHECK(GetTokenInformation(token, TokenUser, buf, sizeof buf, &needed));
    PSID me = ((TOKEN_USER *)buf)->User.Sid;
    LPSTR text = NULL;
    CHECK(ConvertSidToStringSidA(me, &text));
    char expected[64];
    if (geteuid() == 0)
        snprintf(expected, sizeof expected, "S-1-5-18");
    else
        snprintf(expected, sizeof expected, "S-1-22-1-%u", (unsigned)getuid());
    CHECK(text && strcmp(text, expected) == 0);
    LocalFree(text);

    /* The groups: the primary one and Everyone among them. */
    CHECK(GetTokenInformation(token, TokenGroups, buf, sizeof buf, &needed));
    TOKEN_GROUPS *groups = (TOKEN_GROUPS *)buf;
    BYTE world[SECURITY_MAX_SID_SIZE];
    DWORD size = sizeof world;
    CHECK(CreateWellKnownSid(WinWorldSid, NULL, world, &size));
    int has_world = 0;
    for (DWORD i = 0; i < groups->GroupCount; i++)
        has_world |= EqualSid(groups->Groups[i].Sid, world) && (groups->Groups[i].Attributes & SE_GROUP_ENABLED);
    CHECK(groups->GroupCount >= 3 && has_world);

    /* Names, both ways. */
    char name[64], domain[64];
    DWORD name_len = sizeof name, domain_len = sizeof domain;
    SID_NAME_USE use;
    CHECK(LookupAccountSidA(NULL, world, name, &name_len, domain, &domain_len, &use));
    CHECK(strcmp(name, "Everyone") == 0 && use == SidTypeWellKnownGroup);
    BYTE found[SECURITY_MAX_SID_SIZE];
    DWORD found_size = sizeof found;
    domain_len = sizeof domain;
    CHECK(LookupAccountNameA(NULL, "BUILTIN\\Administrators", found, &found_size, domain, &domain_len, &use));
    CHECK(strcmp(domain, "BUILTIN") == 0 && use == SidTypeAlias);
    found_size = sizeof found;
    domain_len = sizeof domain;
    CHECK(LookupAccountNameA(NULL, "root", found, &found_size, domain, &domain_len, &use) || geteuid() != 0);
    name_len = 2;
    domain_len = sizeof domain;
    CHECK_ERR(LookupAccountSidA(NULL, world, name, &name_len, domain, &domain_len, &use), FALSE,
              ERROR_INSUFFICIENT_BUFFER);
    CHECK(name_len == 9);
    PSID nobody = NULL;
    CHECK(ConvertStringSidToSidA("S-1-22-1-4000000000", &nobody));
    name_len = sizeof name;
    domain_len = sizeof domain;
    CHECK_ERR(LookupAccountSidA(NULL, nobody, name, &name_len, domain, &domain_len, &use), FALSE, ERROR_NONE_MAPPED);
    LocalFree(nobody);
    CHECK(CloseHandle(token));
    CHECK(GetCurrentProcessToken() == token);
}

static void private_namespaces(void) {
    /* A boundary of this process's own user: only it can make the namespace. */
    BYTE buf[1024];
    DWORD needed = 0;
    CHECK(GetTokenInformation(GetCurrentProcessToken(), TokenUser, buf, sizeof buf, &needed));
    HANDLE boundary = CreateBoundaryDescriptorA("objmgr-test-boundary", 0);
    CHECK(boundary != NULL);
    CHECK(AddSIDToBoundaryDescriptor(&boundary, ((TOKEN_USER *)buf)->User.Sid));
    HANDLE ns = CreatePrivateNamespaceA(NULL, boundary, "ns");
    CHECK(ns != NULL);
    CHECK_ERR(CreatePrivateNamespaceA(NULL, boundary, "again"), NULL, ERROR_ALREADY_EXISTS);
    HANDLE m = CreateMutexA(NULL, FALSE, "ns\\lock");
    CHECK(m != NULL && GetLastError() == 0);
    CHECK_ERR(OpenMutexA(SYNCHRONIZE, FALSE, "other\\lock"), NULL, ERROR_PATH_NOT_FOUND);
    HANDLE opened = OpenPrivateNamespaceA(boundary, "same");
    CHECK(opened != NULL);
    HANDLE m2 = OpenMutexA(SYNCHRONIZE, FALSE, "same\\lock");
    CHECK(m2 != NULL);
    CHECK(ClosePrivateNamespace(opened, 0));
    CHECK_ERR(ClosePrivateNamespace(opened, 0), 0, ERROR_INVALID_HANDLE); /* closed already */
    CHECK_ERR(ClosePrivateNamespace((HANDLE)4, 0), 0, ERROR_INVALID_HANDLE); /* not one */
    CHECK_ERR(OpenPrivateNamespaceA(m, "x"), NULL, ERROR_INVALID_PARAMETER); /* not a boundary */
    CHECK(ClosePrivateNamespace(ns, PRIVATE_NAMESPACE_FLAG_DESTROY));
    CHECK_ERR(OpenPrivateNamespaceA(boundary, "gone"), NULL, ERROR_PATH_NOT_FOUND);
    /* A boundary this process is not in. */
    PSID stranger = NULL;
    CHECK(ConvertStringSidToSidA("S-1-22-1-4000000000", &stranger));
    HANDLE foreign = CreateBoundaryDescriptorA("objmgr-foreign", 0);
    CHECK(AddSIDToBoundaryDescriptor(&foreign, stranger));
    CHECK_ERR(CreatePrivateNamespaceA(NULL, foreign, "f"), NULL, ERROR_ACCESS_DENIED);
    LocalFree(stranger);
    DeleteBoundaryDescriptor(foreign);
    DeleteBoundaryDescriptor(boundary);
    DeleteBoundaryDescriptor(boundary); /* a second delete does nothing */
    CloseHandle(m2);
    CloseHandle(m);
}

int main(void) {
    sids();
    private_namespaces();
    tokens();
    by_hand();
    null_dacl_and_sddl();
    CHECK_DONE();
}
